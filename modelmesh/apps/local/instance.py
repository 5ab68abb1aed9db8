"""One runtime instance of `modelmesh local`: a model server and the built-in adapter, and a
mesh instance in front of them, each a supervised child process, wired the way the
controller wires a runtime pod (the meshes share the coordination store `KV_STORE` names)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

from modelmesh.apps.local.children import Child, ChildFailed, SupervisedGroup
from modelmesh.apps.local.custom_runtime import CustomRuntime
from modelmesh.apps.local.mesh_process import MeshPorts, MeshProcess, mesh_env
from modelmesh.apps.local.ports import free_ports, port_open
from modelmesh.apps.local.runtimes import BuiltinRuntime, http_ok, role_command
from modelmesh.config.mesh import MeshSettings
from modelmesh.config.settings import load_settings

MEM_BUFFER_BYTES = 128 * 1024 * 1024
# Plain V2 clients name the model in the request (local.md): that name is the vmodel; other
# methods pass as on a cluster. MM_DATAPLANE_CONFIG replaces it.
V2_BY_NAME = json.dumps({"rpcConfigs": {
    "inference.GRPCInferenceService/ModelInfer": {"idExtractionPath": [1], "vModelId": True},
}, "allowOtherRpcs": True}, separators=(",", ":"))
START_TIMEOUT_S = 180.0


@dataclasses.dataclass(frozen=True)
class InstancePlan:
    runtime: BuiltinRuntime | CustomRuntime
    index: int
    workdir: Path  # <state>/instances/<id>
    grpc_port: int  # the mesh's external port (the front door for the first instance; 0: any free port)
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

    def __init__(self, plan: InstancePlan, kv_store: str, report) -> None:
        self.plan = plan
        self.kv_store = kv_store  # KV_STORE of the mesh child
        self.report = report
        self.root = plan.workdir / "models"
        self.server, self.adapter, self.pair = self._make_pair()
        grpc, probe, prestop, metrics = free_ports(4)
        self.mesh_ports = MeshPorts(plan.grpc_port or grpc, probe, prestop, metrics)
        self.mesh: MeshProcess | None = None

    def _make_pair(self) -> tuple[Child, Child, SupervisedGroup]:
        """The model server and, in front of it, the built-in adapter (or, for a custom
        runtime that implements the SPI itself, the puller)."""
        plan, root, runtime = self.plan, self.root, self.plan.runtime
        grpc_port, http_port, metrics_port, front_port = free_ports(4)
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
        # The adapter first (it needs no running server), then the server: a server that
        # answers while nothing is in front of it would have the mesh try (and fail, and
        # remember the failure) a reload through the missing adapter.
        return server, front, SupervisedGroup(plan.id, [front, server], self.report, START_TIMEOUT_S)

    def _mesh_env(self, adapter_port: int, server_grpc_port: int, shutdown_timeout_s: float) -> dict[str, str]:
        """The runtime launch contract (mesh.md), as the controller sets it for a pod; other
        MM_* variables in this process's environment still apply."""
        base = load_settings(MeshSettings, os.environ)
        return mesh_env(base, instance_id=self.plan.id, ports=self.mesh_ports, kv_store=self.kv_store,
                        host=self.plan.host, runtime_port=adapter_port, serving_port=server_grpc_port,
                        labels=list(self.plan.runtime.labels()), type_constraints=self.plan.type_constraints,
                        dataplane_config=base.dataplane_config or V2_BY_NAME, shutdown_timeout_s=shutdown_timeout_s)

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

    async def start_mesh(self, shutdown_timeout_s: float) -> None:
        """Start the mesh child and wait until it is ready; ChildFailed if it cannot start."""
        self.mesh = MeshProcess(self.plan.id, self.mesh_ports, self._mesh_env(*self.ports, shutdown_timeout_s),
                                self.plan.workdir, self.report, shutdown_timeout_s)
        await self.mesh.start()

    @property
    def mesh_ready(self) -> bool:
        return self.mesh is not None and self.mesh.ready

    @property
    def grpc_port(self) -> int:
        return self.mesh_ports.grpc

    def describe(self) -> dict:
        pids = self.pair.pids[::-1]  # the model server first, then the adapter, then the mesh
        if self.mesh is not None and self.mesh.pid is not None:
            pids.append(self.mesh.pid)
        return {"runtime": self.plan.runtime.name, "instance": self.plan.id, "state": self.pair.state,
                "mesh": self.mesh.state if self.mesh is not None else "starting",
                "restarts": self.pair.restarts + (self.mesh.restarts if self.mesh is not None else 0),
                "mesh_restarts": self.mesh.restarts if self.mesh is not None else 0, "pids": pids}

    async def stop(self) -> None:
        """The mesh first (it hands off the models in use while its runtime still serves)."""
        try:
            if self.mesh is not None:
                await self.mesh.stop()
        finally:
            await self.pair.stop()


def constraints_json(constraints: dict) -> str:
    return json.dumps(constraints, separators=(",", ":"))
