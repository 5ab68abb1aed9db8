"""`modelmesh runtime rest-proxy`: the KServe V2 REST -> gRPC proxy.

The component plugs in here; until it lands this role only runs the shared lifecycle.
"""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.proxy import RestProxySettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.runtime.rest_proxy")


class Placeholder(ObservedApp):
    def __init__(self, settings: RestProxySettings) -> None:
        super().__init__("runtime-rest-proxy", MetricsSpec(enabled=False), None)
        self.settings = settings

    async def start_components(self) -> None:
        log.warning("component not available in this build", role="rest-proxy")


def make_app(settings: RestProxySettings) -> ObservedApp:
    return Placeholder(settings)
