"""`modelmesh runtime` (role mesh): one instance of the serving mesh, with its probes
(/ready, /live), Prometheus metrics and the preStop gate of the pod's shutdown order."""

from __future__ import annotations

import asyncio

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.mesh import MeshSettings
from modelmesh.lifecycle import StartupError
from modelmesh.mesh.instance import MeshInstance
from modelmesh.mesh.prestop import PreStopGate
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.runtime")


class MeshApp(ObservedApp):
    def __init__(self, settings: MeshSettings) -> None:
        # Probes and metrics listen where the gRPC ports do (all addresses in a pod; loopback
        # under `modelmesh local`).
        super().__init__("runtime", settings.metrics, settings.probe_port, host=settings.listen_host)
        self.settings = settings
        self.stop_requested = asyncio.Event()  # lifecycle.serve: stop as on SIGTERM
        self.prestop = PreStopGate(settings.prestop_port, self.stop_requested.set,
                                   max_hold_s=max(10.0, 2 * settings.shutdown_timeout_ms / 1000),
                                   host=settings.listen_host)
        self.prestop_serving = False
        self.mesh = MeshInstance(settings, self.registry)

    async def start(self) -> None:
        # Up first (before the probes say live, before the mesh starts), so a pod deleted during
        # start-up stops in order too. In a pod the controller reserves its port; elsewhere
        # (several meshes on one host, as the launch contract allows, with MM_PRESTOP_WAIT_PORT
        # left at its default) a taken port only means there is no pod shutdown order to serve.
        try:
            await self.prestop.start()
            self.prestop_serving = True
        except OSError as e:
            log.warning("preStop gate not served: colocated containers' preStop hooks will not wait for the "
                        "hand-off (set MM_PRESTOP_WAIT_PORT to a free port)", error=e.strerror)
        await super().start()

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            if self.prestop_serving:
                await self.prestop.stop()

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
        try:
            await self.mesh.stop(self.settings.shutdown_timeout_ms / 1000)
        finally:
            # Models handed off, runtime clients closed: the runtime may stop now.
            self.prestop.release()


def make_app(settings: MeshSettings) -> MeshApp:
    return MeshApp(settings)
