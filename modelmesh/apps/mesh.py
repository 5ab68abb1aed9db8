"""`modelmesh runtime` (role mesh): one instance of the serving mesh.

The mesh component plugs in here; until it lands this serves probes and metrics only.
"""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.mesh import MeshSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.runtime.mesh")


class MeshApp(ObservedApp):
    def __init__(self, settings: MeshSettings) -> None:
        super().__init__("runtime", settings.metrics, settings.probe_port)
        self.settings = settings

    async def start_components(self) -> None:
        log.warning("mesh component not available in this build; serving probes and metrics only",
                    service=self.settings.service_name, instance=self.settings.instance_id)


def make_app(settings: MeshSettings) -> MeshApp:
    return MeshApp(settings)
