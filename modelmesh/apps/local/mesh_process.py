"""The mesh of one runtime instance as a supervised child process: `modelmesh runtime` (the
mesh role) started with the launch contract of mesh.md, as the controller starts it in a
pod, on the coordination store `KV_STORE` names (the embedded store's etcd front, or etcd).

Its probe port tells whether it is ready (polled here, so readiness reads stay synchronous);
its metrics port is scraped when the metrics of `modelmesh local` are asked for."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from modelmesh.apps.local.children import Child, Report, SupervisedGroup
from modelmesh.apps.local.runtimes import role_command
from modelmesh.config.mesh import MeshSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.local.mesh")

PROBE_PERIOD_S = 0.5
START_TIMEOUT_S = 240.0  # the mesh waits up to MM_RUNTIME_STARTUP_TIMEOUT_SECS (180 s) for its runtime


class MeshPorts:
    """The ports one mesh child listens on; fixed for its life, restarts included."""

    def __init__(self, grpc: int, probe: int, prestop: int, metrics: int) -> None:
        self.grpc, self.probe, self.prestop, self.metrics = grpc, probe, prestop, metrics


def mesh_env(base: MeshSettings, *, instance_id: str, ports: MeshPorts, kv_store: str, host: str,
             runtime_port: int, serving_port: int, labels: list[str], type_constraints: str,
             dataplane_config: str, shutdown_timeout_s: float) -> dict[str, str]:
    """The environment of a mesh child: this process's (other MM_* settings still apply),
    with what the controller would set for a pod of this runtime."""
    metrics = f"prometheus:port={ports.metrics};scheme=http"
    if base.metrics.per_model_metrics:
        metrics += ";per_model_metrics=true"
    if base.metrics.fq_names:
        metrics += ";fq_names=true"
    return {
        **os.environ,
        "MM_SVC_GRPC_PORT": str(ports.grpc), "MM_INTERNAL_GRPC_PORT": "0", "MM_PROBE_PORT": str(ports.probe),
        "MM_PRESTOP_WAIT_PORT": str(ports.prestop), "MM_METRICS": metrics, "KV_STORE": kv_store,
        "INTERNAL_GRPC_PORT": str(runtime_port), "INTERNAL_GRPC_SOCKET_PATH": "",
        "INTERNAL_SERVING_GRPC_PORT": str(serving_port), "INTERNAL_SERVING_GRPC_SOCKET_PATH": "",
        "WKUBE_POD_NAME": instance_id, "MM_LISTEN_HOST": host,
        # Peers (the other instances) dial the internal port on this address.
        "WKUBE_POD_IPADDR": "127.0.0.1" if host in ("0.0.0.0", "::", "") else host,
        "MM_LABELS": ",".join(labels), "MM_TYPE_CONSTRAINTS": type_constraints, "MM_TYPE_CONSTRAINTS_PATH": "",
        "MM_DATAPLANE_CONFIG": dataplane_config,
        # Plain text on this machine (local mode has no TLS settings yet).
        "MM_TLS_KEY_CERT_PATH": "", "MM_TLS_PRIVATE_KEY_PATH": "", "MM_TLS_PRIVATE_KEY_PASSPHRASE": "",
        "MM_TLS_CLIENT_AUTH": "none",
        "MM_TLS_TRUST_CERT_PATH": "",
        "SHUTDOWN_TIMEOUT_MS": str(int(shutdown_timeout_s * 1000)),
        "LOG_FORMAT": "json",
    }


class MeshProcess:
    def __init__(self, instance_id: str, ports: MeshPorts, env: dict[str, str], workdir: Path, report: Report,
                 shutdown_timeout_s: float) -> None:
        self.id = instance_id
        self.ports = ports
        self.shutdown_timeout_s = shutdown_timeout_s
        # This process's working directory: a relative KV_STORE=etcd:<file> means the same.
        self.child = Child(f"mesh ({instance_id})", role_command("mesh"), env, workdir / "logs" / "mesh.log",
                           self._probe_ready)
        self.group = SupervisedGroup(f"mesh of {instance_id}", [self.child], report, START_TIMEOUT_S)
        self.ready = False  # the child's /ready, as last polled
        self._http: aiohttp.ClientSession | None = None
        self._poll: asyncio.Task | None = None

    @property
    def restarts(self) -> int:
        return self.group.restarts

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.group.state != "stopped" else None

    @property
    def state(self) -> str:
        if self.group.state == "restarting":
            return "restarting"
        return "ready" if self.ready else "starting" if self.group.state == "starting" else "not ready"

    async def start(self) -> None:
        """Start it and wait until ready; ChildFailed (naming its log) if it cannot start."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        await self.group.start()
        self.ready = True
        self._poll = asyncio.create_task(self._follow_readiness(), name=f"mesh-ready-{self.id}")
        self._poll.add_done_callback(self._poll_ended)

    async def _get(self, port: int, path: str) -> tuple[int, str]:
        assert self._http is not None
        async with self._http.get(f"http://127.0.0.1:{port}{path}") as resp:
            return resp.status, await resp.text()

    async def _probe_ready(self) -> bool:
        return (await self._get(self.ports.probe, "/ready"))[0] == 200

    async def _follow_readiness(self) -> None:
        while True:
            await asyncio.sleep(PROBE_PERIOD_S)
            try:
                self.ready = self.child.running() and await self._probe_ready()
            except (aiohttp.ClientError, TimeoutError):
                self.ready = False

    def _poll_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("mesh readiness poll failed", instance=self.id, error=repr(task.exception()))

    async def metrics_text(self) -> str:
        """Its Prometheus text ("" while it does not answer)."""
        if self._http is None or not self.child.running():
            return ""
        try:
            status, text = await self._get(self.ports.metrics, "/metrics")
        except (aiohttp.ClientError, TimeoutError) as e:
            log.debug("mesh metrics not scraped", instance=self.id, error=repr(e))
            return ""
        return text if status == 200 else ""

    async def stop(self) -> None:
        """SIGTERM: the mesh hands off the models in use (SHUTDOWN_TIMEOUT_MS), then exits."""
        self.ready = False
        if self._poll is not None:
            self._poll.cancel()
            await asyncio.gather(self._poll, return_exceptions=True)
        try:
            await self.group.stop(grace_s=self.shutdown_timeout_s + 5)
        finally:
            if self._http is not None:
                await self._http.close()
                self._http = None
