"""`modelmesh local` as a real process on free ports, with temp config and state dirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from harness.models import IRIS_SAMPLES
from harness.process import ManagedProcess, free_port, wait_until
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

ROOT = Path(__file__).resolve().parents[2]
MODELMESH = [sys.executable, "-m", "modelmesh.cli"]


def isvc_yaml(name: str, storage_uri: str, fmt: str = "sklearn") -> str:
    return f"""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  annotations:
    serving.kserve.io/deploymentMode: ModelMesh
spec:
  predictor:
    model:
      modelFormat:
        name: {fmt}
      storageUri: {storage_uri}
"""


def env_for_child() -> dict[str, str]:
    """Our environment, with this checkout first on the path (children import modelmesh)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(ROOT)
    return env


def http(method: str, url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}
    except OSError:
        return 0, {}


def iris_rest_body() -> dict:
    rows = [x for x, _ in IRIS_SAMPLES]
    return {"inputs": [{"name": "predict", "shape": [len(rows), 4], "datatype": "FP64",
                        "data": [v for row in rows for v in row]}]}


def iris_expected() -> list[int]:
    return [c for _, c in IRIS_SAMPLES]


class LocalMode:
    def __init__(self, workdir: Path, config_dir: Path, state_dir: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.grpc_port, self.rest_port, self.metrics_port = free_port(), free_port(), free_port()
        self.args = [
            "local", "--config-dir", str(config_dir), "--state-dir", str(state_dir),
            "--grpc-port", str(self.grpc_port), "--rest-port", str(self.rest_port),
            "--metrics-port", str(self.metrics_port), "--runtimes", "mlserver", *(extra_args or []),
        ]
        self.env = {**env_for_child(), **(env or {})}
        self.proc: ManagedProcess | None = None
        self.runs = 0

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self, timeout: float = 240) -> LocalMode:
        self.runs += 1
        self.proc = ManagedProcess("modelmesh-local", [*MODELMESH, *self.args],
                                   self.workdir / f"local-{self.runs}.out", env=self.env, cwd=self.workdir)
        self.proc.start(self.ready, timeout=timeout)
        return self

    def ready(self) -> bool:
        return http("GET", f"{self.rest}/v2/health/ready", timeout=2)[0] == 200

    def output(self) -> str:
        return self.proc.log_path.read_text(errors="replace") if self.proc else ""

    def status(self) -> dict:
        return json.loads((self.state_dir / "status.json").read_text())

    def model_status(self, name: str) -> dict | None:
        return next((m for m in self.status()["models"] if m["name"] == name), None)

    def wait_model(self, name: str, active: str = "Loaded", timeout: float = 120) -> dict:
        def check() -> bool:
            m = self.model_status(name)
            return m is not None and m["activeModelState"] == active and m["targetModelState"] == ""

        try:
            wait_until(check, timeout, f"model {name} {active}", interval=0.2)
        except TimeoutError:
            raise AssertionError(f"model {name} not {active}: {self.model_status(name)}\n{self.output()}") from None
        return self.model_status(name)

    def child_pids(self) -> list[int]:
        return [p for r in self.status()["runtimes"] for p in r["pids"]]

    def infer_rest(self, name: str) -> tuple[int, dict]:
        return http("POST", f"{self.rest}/v2/models/{name}/infer", iris_rest_body())

    def infer_grpc(self, name: str, by_header: bool = True) -> v2.ModelInferResponse:
        rows = [x for x, _ in IRIS_SAMPLES]
        req = v2.ModelInferRequest(model_name=name)
        t = req.inputs.add(name="predict", datatype="FP64", shape=[len(rows), 4])
        t.contents.fp64_contents.extend(v for row in rows for v in row)
        metadata = [("mm-vmodel-id", name)] if by_header else None
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as ch:
            return GRPCInferenceServiceStub(ch).ModelInfer(req, metadata=metadata, timeout=60)

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*MODELMESH, *args], capture_output=True, text=True, timeout=timeout, env=self.env, check=False,
                              cwd=self.workdir)

    def terminate(self, timeout: float = 60, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or Ctrl-C's SIGINT) to the process itself, not its group: it must stop its
        children."""
        assert self.proc is not None and self.proc.proc is not None
        self.proc.proc.send_signal(sig)
        try:
            return self.proc.proc.wait(timeout)
        finally:
            self.proc.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=60)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; it only waits for its parent to reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
