"""Mesh instances as real processes: `modelmesh runtime` started with the launch-contract
env (mesh.md), each in front of its own runtime process (the test runtime, or a real
adapter + model server)."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import grpc

from harness.process import ManagedProcess, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status
    except OSError:
        return 0


class TestRuntimeProcess:
    """harness.test_runtime as a process."""

    def __init__(self, workdir: Path, name: str, capacity: int, default_size: int = 1_000_000,
                 load_timeout_ms: int = 10000, loading: int = 4, allow_any_method: bool = True,
                 limit_concurrency: bool = False) -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, "TEST_RUNTIME_PORT": str(self.port), "TEST_RUNTIME_NAME": name,
                    "TEST_RUNTIME_CAPACITY": str(capacity), "TEST_RUNTIME_DEFAULT_SIZE": str(default_size),
                    "TEST_RUNTIME_LOAD_TIMEOUT_MS": str(load_timeout_ms), "TEST_RUNTIME_LOADING": str(loading),
                    "TEST_RUNTIME_ALLOW_ANY_METHOD": "1" if allow_any_method else "0",
                    "TEST_RUNTIME_LIMIT_CONCURRENCY": "1" if limit_concurrency else "0",
                    "PYTHONPATH": f"{ROOT / 'tests'}:{ROOT}"}
        self.proc: ManagedProcess | None = None

    def start(self) -> "TestRuntimeProcess":
        self.proc = ManagedProcess(f"runtime-{self.name}", [sys.executable, "-m", "harness.test_runtime"],
                                   self.workdir / f"runtime-{self.name}.log", env=self.env)
        self.proc.start(lambda: port_open(self.port), timeout=30)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    async def loaded(self) -> dict:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            raw = await ch.unary_unary("/test.Admin/Loaded")(b"", timeout=5)
        return json.loads(raw)

    async def release_unloads(self) -> None:
        """Let every held unload (model key `hold_unload`) finish, now and later."""
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            await ch.unary_unary("/test.Admin/ReleaseUnloads")(b"", timeout=5)


class MeshProcess:
    """One `modelmesh runtime` instance."""

    def __init__(self, workdir: Path, instance_id: str, etcd_endpoint: str, runtime_port: int,
                 service_name: str = "test-mesh", extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.instance_id = instance_id
        self.grpc_port, self.internal_port = free_port(), free_port()
        self.probe_port, self.metrics_port, self.prestop_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "MM_SERVICE_NAME": service_name, "MM_SVC_GRPC_PORT": str(self.grpc_port),
            "MM_INTERNAL_GRPC_PORT": str(self.internal_port), "MM_PROBE_PORT": str(self.probe_port),
            "MM_PRESTOP_WAIT_PORT": str(self.prestop_port),
            "MM_METRICS": f"prometheus:port={self.metrics_port};scheme=http",
            "KV_STORE": f"etcd:{etcd_endpoint}", "MM_KVSTORE_PREFIX": "mm",
            "INTERNAL_GRPC_PORT": str(runtime_port), "WKUBE_POD_NAME": instance_id,
            "WKUBE_POD_IPADDR": "127.0.0.1", "MM_LOCATION": f"loc-{instance_id}",
            "MM_MIN_CHURN_AGE_MS": "0", "MM_JANITOR_FREQ_SECS": "2", "MM_RUNTIME_POLL_SECS": "0.2",
            "MM_LEASE_TTL_SECS": "3", "SHUTDOWN_TIMEOUT_MS": "20000", "LOG_LEVEL": "info",
            **(extra_env or {}),
        }
        # A test's own MM_METRICS (extra options) says `{port}` for the port chosen here.
        self.env["MM_METRICS"] = self.env["MM_METRICS"].replace("{port}", str(self.metrics_port))
        self.proc: ManagedProcess | None = None
        self.log_path = self.workdir / f"mesh-{self.instance_id}.log"
        # Exit codes of the runs that ended other than by kill() (checked by problems()).
        self.exit_codes: list[int | None] = []
        self._run_over = True

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 60) -> "MeshProcess":
        self.proc = ManagedProcess(f"mesh-{self.instance_id}", [sys.executable, "-m", "modelmesh.cli", "runtime"],
                                   self.log_path, env=self.env)
        self._run_over = False
        self.proc.start(lambda: _get_status(f"http://127.0.0.1:{self.probe_port}/ready") == 200, timeout=timeout)
        return self

    def stop(self, grace: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `grace` (a graceful exit is code 0)."""
        if self.proc is None:
            return None
        code = self.proc.stop(grace=grace)
        if not self._run_over:
            self.exit_codes.append(code)
            self._run_over = True
        return code

    def kill(self) -> None:
        """SIGKILL on purpose: this run's exit code is not a problem."""
        if self.proc:
            self._run_over = True
            self.proc.kill()

    def problems(self) -> list[str]:
        """What says this instance misbehaved: a run that ended with a non-zero code (crashed,
        or did not finish a graceful stop in time) and every error or traceback it logged."""
        found = [f"mesh {self.instance_id} exited with {code}" for code in self.exit_codes if code != 0]
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        found += [f"mesh {self.instance_id} logged: {line[:2000]}" for line in lines
                  if "Traceback" in line or '"level":"error"' in line or '"level":"critical"' in line]
        return found

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()


class MeshNode:
    """A runtime pod: test runtime + mesh instance."""

    def __init__(self, workdir: Path, name: str, etcd_endpoint: str, capacity: int,
                 mesh_env: dict[str, str] | None = None, **runtime_kw) -> None:
        self.name = name
        self.runtime = TestRuntimeProcess(workdir, name, capacity, **runtime_kw)
        self.mesh = MeshProcess(workdir, name, etcd_endpoint, self.runtime.port, extra_env=mesh_env)

    def start(self) -> "MeshNode":
        self.runtime.start()
        self.mesh.start()
        return self

    def stop(self) -> None:
        self.mesh.stop()
        self.runtime.stop()

    def kill(self) -> None:
        self.mesh.kill()
        self.runtime.proc.kill()
