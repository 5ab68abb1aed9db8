"""One runtime instance of `modelmesh local`: a model server and the built-in adapter as
supervised child processes, and a mesh instance in front of them (in this process, on the
shared coordination store), wired the way the controller wires a runtime pod."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelmesh.apps.local.children import Child, ChildFailed, SupervisedPair
from modelmesh.apps.local.custom_runtime import CustomRuntime
from modelmesh.apps.local.runtimes import BuiltinRuntime, http_ok, port_open, role_command
from modelmesh.config.common import MetricsSpec
from modelmesh.config.mesh import MeshSettings
from modelmesh.config.settings import load_settings
from modelmesh.kv import KVStore
from modelmesh.mesh.instance import MeshInstance

MEM_BUFFER_BYTES = 128 * 1024 * 1024
# Plain V2 clients name the model in the request (local.md): that name is the vmodel; other
# methods pass as on a cluster. MM_DATAPLANE_CONFIG replaces it.
V2_BY_NAME = json.dumps({"rpcConfigs": {
    "inference.GRPCInferenceService/ModelInfer": {"idExtractionPath": [1], "vModelId": True},
}, "allowOtherRpcs": True}, separators=(",", ":"))
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class InstancePlan:
    runtime: BuiltinRuntime | CustomRuntime
    index: int
    workdir: Path  # <state>/instances/<id>
    grpc_port: int  # the mesh's external port (the front door for the first instance)
    model_memory_bytes: int
    storage_config_dir: Path
    mounts_root: Path
    type_constraints: str  # JSON
    host: str = "127.0.0.1"  # --host: where the mesh's gRPC ports listen

    @property
    def id(self) -> str:
        return f"{self.runtime.name}-{self.index}"


class RuntimeInstance:
    START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it

    def __init__(self, plan: InstancePlan, store: KVStore, report) -> None:
        self.plan = plan
        self.registry = CollectorRegistry(auto_describe=True)
        self.store = store
        self.report = report
        self.root = plan.workdir / "models"
        self.server, self.adapter, self.pair = self._make_pair()
        self.mesh_settings: MeshSettings | None = None
        self.mesh: MeshInstance | None = None

    def _make_pair(self) -> tuple[Child, Child, SupervisedPair]:
        """The model server and, in front of it, the built-in adapter (or, for a custom
        runtime that implements the SPI itself, the puller)."""
        plan, root, runtime = self.plan, self.root, self.plan.runtime
        grpc_port, http_port, metrics_port, front_port = free_port(), free_port(), free_port(), free_port()
        logs = plan.workdir / "logs"
        launch = runtime.launch(root / runtime.models_subdir if runtime.models_subdir else root,
                                grpc_port, http_port, metrics_port)
        self.ports = (front_port, launch.data_port)

        async def server_ready() -> bool:
            def check() -> bool:
                return all(port_open(p) for p in launch.ready_ports) and (
                    launch.ready_url is None or http_ok(launch.ready_url))
            return await asyncio.to_thread(check)

        async def front_ready() -> bool:
            return await asyncio.to_thread(port_open, front_port)

        env = {
            **os.environ, "CONTAINER_MEM_REQ_BYTES": str(plan.model_memory_bytes + MEM_BUFFER_BYTES),
            "MEM_BUFFER_BYTES": str(MEM_BUFFER_BYTES), "LOADING_CONCURRENCY": "2", "LOADTIME_TIMEOUT": "90000",
            "ROOT_MODEL_DIR": str(root), "USE_EMBEDDED_PULLER": "true",
            "STORAGE_CONFIG_DIR": str(plan.storage_config_dir), "PVC_MOUNTS_ROOT": str(plan.mounts_root),
            "LOG_FORMAT": "json",
        }
        if runtime.server_type:
            role, kind = "adapter", runtime.server_type
            env.update({"SERVER_TYPE": runtime.server_type, "ADAPTER_PORT": str(front_port),
                        "ADAPTER_HOST": "127.0.0.1", "RUNTIME_HOST": "127.0.0.1",
                        "RUNTIME_PORT": str(launch.management_port)})
        else:
            role, kind = "puller", runtime.name
            env.update({"PULLER_PORT": str(front_port), "MODEL_SERVER_ENDPOINT": f"port:{runtime.spi_port}"})
        server = Child(f"{kind} ({plan.id})", launch.cmd, launch.env, logs / f"{kind}.log", server_ready,
                       cwd=plan.workdir)
        front = Child(f"{role} ({plan.id})", role_command(role), env, logs / f"{role}.log", front_ready,
                      cwd=plan.workdir)
        return server, front, SupervisedPair(plan.id, server, front, self.report, START_TIMEOUT_S)

    def _mesh_settings(self, adapter_port: int, server_grpc_port: int) -> MeshSettings:
        """The runtime launch contract (mesh.md), as the controller sets it for a pod; other
        MM_* variables in this process's environment still apply."""
        base = load_settings(MeshSettings, os.environ)
        return dataclasses.replace(
            base, grpc_port=self.plan.grpc_port, internal_grpc_port=0, metrics=MetricsSpec(enabled=False),
            runtime_grpc_port=adapter_port, runtime_grpc_socket="", serving_grpc_port=server_grpc_port,
            serving_grpc_socket="", instance_id=self.plan.id, listen_host=self.plan.host,
            # Peers (the other instances) dial the internal port on this address.
            pod_ip="127.0.0.1" if self.plan.host in ("0.0.0.0", "::", "") else self.plan.host,
            labels=tuple(self.plan.runtime.labels()), type_constraints=self.plan.type_constraints,
            type_constraints_path="", kv_store="", dataplane_config=base.dataplane_config or V2_BY_NAME,
            # Plain text on this machine (local mode has no TLS settings yet).
            tls_key_cert_path="", tls_private_key_path="", tls_private_key_passphrase="", tls_client_auth="none",
            tls_trust_cert_path="",
        )

    async def start_runtime(self) -> None:
        self.plan.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.START_ATTEMPTS + 1):
            try:
                await self.pair.start()
                return
            except ChildFailed as e:
                if attempt == self.START_ATTEMPTS or self.plan.runtime.fixed_ports:
                    raise
                self.report(f"{e}; trying again with other ports")
                self.server, self.adapter, self.pair = self._make_pair()

    async def start_mesh(self) -> None:
        self.mesh_settings = self._mesh_settings(*self.ports)
        self.mesh = MeshInstance(self.mesh_settings, self.registry, self.store)
        await self.mesh.start()

    @property
    def mesh_ready(self) -> bool:
        return self.mesh is not None and self.mesh.ready and self.mesh.runtime_healthy

    @property
    def grpc_port(self) -> int:
        return self.mesh.grpc_port if self.mesh is not None else self.plan.grpc_port

    def describe(self) -> dict:
        mesh = "ready" if self.mesh_ready else ("runtime down" if self.mesh is not None and self.mesh.ready
                                                else "starting" if self.mesh is None else "not ready")
        return {"runtime": self.plan.runtime.name, "instance": self.plan.id, "state": self.pair.state,
                "mesh": mesh, "restarts": self.pair.restarts,
                "pids": [p for p in (self.server.pid, self.adapter.pid) if p is not None and self.pair.state != "stopped"]}

    async def stop(self, mesh_timeout_s: float) -> None:
        try:
            if self.mesh is not None:
                await self.mesh.stop(mesh_timeout_s)
        finally:
            await self.pair.stop()


def constraints_json(constraints: dict) -> str:
    return json.dumps(constraints, separators=(",", ":"))
