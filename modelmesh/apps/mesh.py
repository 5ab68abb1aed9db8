"""`modelmesh runtime` (role mesh): one instance of the serving mesh, with its probes
(/ready, /live) and Prometheus metrics."""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.mesh import MeshSettings
from modelmesh.lifecycle import StartupError
from modelmesh.mesh.instance import MeshInstance


class MeshApp(ObservedApp):
    def __init__(self, settings: MeshSettings) -> None:
        super().__init__("runtime", settings.metrics, settings.probe_port)
        self.settings = settings
        self.mesh = MeshInstance(settings, self.registry)

    @property
    def ready(self) -> bool:
        """/ready: started, not leaving, and the runtime behind the mesh is reachable."""
        mesh = getattr(self, "mesh", None)
        return self._started and mesh is not None and mesh.ready and mesh.runtime_healthy

    @ready.setter
    def ready(self, value: bool) -> None:
        self._started = value

    async def start_components(self) -> None:
        try:
            await self.mesh.start()
        except (TimeoutError, ValueError) as e:
            raise StartupError(str(e)) from None
        self.ready = True

    async def stop_components(self) -> None:
        self.ready = False
        await self.mesh.stop(self.settings.shutdown_timeout_ms / 1000)


def make_app(settings: MeshSettings) -> MeshApp:
    return MeshApp(settings)
