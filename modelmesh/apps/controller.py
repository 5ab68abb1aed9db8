"""`modelmesh controller`: wiring of the reconcilers (which land with the controller issue)."""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.controller import ControllerSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller")


class ControllerApp(ObservedApp):
    def __init__(self, settings: ControllerSettings) -> None:
        super().__init__("controller", MetricsSpec(port=settings.metrics_port, scheme="http"), None)
        self.settings = settings
        if self.probe_endpoint is None:
            from modelmesh.observability.http import HttpEndpoint

            self.probe_endpoint = HttpEndpoint("0.0.0.0", settings.health_port)
            self.probe_endpoint.add_check("/healthz", lambda: True)
            self.probe_endpoint.add_check("/readyz", lambda: self.ready)
            self.endpoints.append(self.probe_endpoint)

    async def start_components(self) -> None:
        log.warning("reconcilers not available in this build; serving probes and metrics only",
                    namespace=self.settings.namespace)


def make_app(settings: ControllerSettings) -> ControllerApp:
    return ControllerApp(settings)
