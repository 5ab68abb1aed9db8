"""`modelmesh runtime adapter`: the built-in adapter (ModelRuntime SPI in front of a model server)."""

from __future__ import annotations

from modelmesh.adapters.service import AdapterService
from modelmesh.apps.observed import ObservedApp
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.common import MetricsSpec
from modelmesh.lifecycle import StartupError


class AdapterApp(ObservedApp):
    def __init__(self, settings: AdapterSettings) -> None:
        # The mesh container owns metrics and probes for the pod; the adapter serves the SPI only.
        super().__init__("runtime-adapter", MetricsSpec(enabled=False), None)
        self.settings = settings
        self.service = AdapterService(settings)

    async def start_components(self) -> None:
        try:
            await self.service.start()
        except RuntimeError as e:  # grpc: failed to bind
            raise StartupError(f"cannot serve the ModelRuntime SPI on port {self.settings.adapter_port}: {e}") from e
        self.ready = True

    async def stop_components(self) -> None:
        await self.service.stop()


def make_app(settings: AdapterSettings) -> ObservedApp:
    return AdapterApp(settings)
