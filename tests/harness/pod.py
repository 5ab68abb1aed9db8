"""A runtime pod as local processes, wired the way the controller's Deployment wires its
containers: a real model server (MLServer or Triton), the built-in adapter
(`modelmesh runtime adapter`) and the mesh (`modelmesh runtime`), all from env vars."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.mesh import MeshProcess
from harness.process import ManagedProcess, free_port, port_open
from harness.services import MLServer, Triton

MEM_REQ = 1024**3
MEM_BUFFER = 128 * 1024**2


class RuntimePod:
    def __init__(self, workdir: Path, name: str, server_type: str, etcd_endpoint: str, storage_config_dir: Path,
                 mesh_env: dict[str, str] | None = None, mem_req: int = MEM_REQ) -> None:
        self.workdir = workdir / name
        self.name = name
        self.server_type = server_type
        self.root = self.workdir / "models"
        server_cls = MLServer if server_type == "mlserver" else Triton
        self.server = server_cls(self.workdir / server_type)
        if server_type == "mlserver":
            self.server.models_dir = self.root / "_mlserver_models"
        else:
            self.server.repo = self.root / "_triton_models"
        self.adapter_port = free_port()
        self.adapter_env = {
            **os.environ, "SERVER_TYPE": server_type, "ADAPTER_PORT": str(self.adapter_port),
            "RUNTIME_PORT": str(self.server.grpc_port), "CONTAINER_MEM_REQ_BYTES": str(mem_req),
            "MEM_BUFFER_BYTES": str(MEM_BUFFER), "LOADING_CONCURRENCY": "2", "LOADTIME_TIMEOUT": "90000",
            "ROOT_MODEL_DIR": str(self.root), "USE_EMBEDDED_PULLER": "true",
            "STORAGE_CONFIG_DIR": str(storage_config_dir),
        }
        self.adapter: ManagedProcess | None = None
        env = {"INTERNAL_SERVING_GRPC_PORT": str(self.server.grpc_port), **(mesh_env or {})}
        self.mesh = MeshProcess(self.workdir, name, etcd_endpoint, self.adapter_port, extra_env=env)

    def start(self) -> "RuntimePod":
        self.root.mkdir(parents=True, exist_ok=True)
        self.server.start()
        self.adapter = ManagedProcess(f"adapter-{self.name}", [sys.executable, "-m", "modelmesh.cli", "runtime",
                                                                "adapter"], self.workdir / "adapter.log",
                                      env=self.adapter_env)
        self.adapter.start(lambda: port_open(self.adapter_port), timeout=60)
        self.mesh.start(timeout=120)
        return self

    def stop(self) -> None:
        for stop in (self.mesh.stop, lambda: self.adapter and self.adapter.stop(), self.server.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop the rest regardless
                pass
