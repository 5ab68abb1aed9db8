"""`modelmesh runtime rest-proxy`: the KServe V2 REST -> gRPC proxy of a runtime pod."""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.proxy import RestProxySettings
from modelmesh.proxy.server import RestProxy


class RestProxyApp(ObservedApp):
    """The proxy plus its own /metrics (REST_PROXY_METRICS_PORT, off when 0)."""

    def __init__(self, settings: RestProxySettings) -> None:
        metrics = MetricsSpec(enabled=settings.metrics_port > 0, port=settings.metrics_port, scheme="http")
        super().__init__("runtime-rest-proxy", metrics, None, host=settings.listen_host)
        self.settings = settings
        self.proxy = RestProxy(settings, self.registry)

    async def start_components(self) -> None:
        await self.proxy.start()
        self.ready = True

    async def stop_components(self) -> None:
        await self.proxy.stop()


def make_app(settings: RestProxySettings) -> RestProxyApp:
    return RestProxyApp(settings)
