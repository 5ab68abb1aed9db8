"""`modelmesh runtime adapter`: the built-in adapter (ModelRuntime SPI in front of a model server).

The component plugs in here; until it lands this role only runs the shared lifecycle.
"""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.adapter import AdapterSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.runtime.adapter")


class Placeholder(ObservedApp):
    def __init__(self, settings: AdapterSettings) -> None:
        super().__init__("runtime-adapter", MetricsSpec(enabled=False), None)
        self.settings = settings

    async def start_components(self) -> None:
        log.warning("component not available in this build", role="adapter")


def make_app(settings: AdapterSettings) -> ObservedApp:
    return Placeholder(settings)
