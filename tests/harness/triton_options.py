"""Triton with extra server options (header forwarding, gRPC TLS) for protocol tests."""

from __future__ import annotations

import os
from pathlib import Path

from harness import tools
from harness.process import ManagedProcess, port_open
from harness.services import Triton


class TritonWithOptions(Triton):
    """The harness Triton plus `extra_args`; readiness is the gRPC port (it may be TLS-only)."""

    def __init__(self, workdir: Path, extra_args: list[str]) -> None:
        super().__init__(workdir)
        self.extra_args = extra_args

    def start(self) -> "TritonWithOptions":
        t = tools.triton_env()
        self.repo.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{t['TRITON_PATH']}:{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = t["TRITON_LD_LIBRARY_PATH"]
        cmd = [
            t["TRITON_BIN"], f"--model-repository={self.repo}", f"--backend-directory={t['TRITON_BACKENDS']}",
            "--model-control-mode=explicit", "--strict-model-config=false",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false", "--exit-timeout-secs=5", *self.extra_args,
        ]
        self.proc = ManagedProcess("triton", cmd, self.workdir / "triton.log", env=env)
        self.proc.start(lambda: port_open(self.grpc_port) and port_open(self.http_port), timeout=60)
        return self
