"""`modelmesh runtime`: the sidecar of a runtime pod.

Roles: `mesh` (default; the launch contract of mesh.md), `adapter`, `puller`, `rest-proxy`.
The foundation serves each role's observability surface (metrics, probes) and lifecycle;
the mesh, adapter and REST proxy components plug in here as they land.
"""

from __future__ import annotations

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.mesh import MeshSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.runtime")


class MeshRuntimeApp(ObservedApp):
    def __init__(self, settings: MeshSettings) -> None:
        super().__init__("runtime", settings.metrics, settings.probe_port)
        self.settings = settings

    async def start_components(self) -> None:
        log.warning("mesh component not available in this build; serving probes and metrics only",
                    service=self.settings.service_name, instance=self.settings.instance_id)


class RoleApp(ObservedApp):
    """A role whose component is not built yet: probes/metrics only, never ready."""

    def __init__(self, role: str, metrics: MetricsSpec, probe_port: int | None) -> None:
        super().__init__(f"runtime-{role}", metrics, probe_port)
        self.role = role

    async def start_components(self) -> None:
        log.warning("component not available in this build", role=self.role)
