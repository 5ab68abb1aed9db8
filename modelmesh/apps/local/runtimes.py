"""The built-in runtimes of `modelmesh local`: what model formats each serves (as its
ClusterServingRuntime says on a cluster) and how to start its model server on this machine.

The model servers are the ones `make quickstart` / `make deps` install under
`~/.cache/modelmesh` (MODELMESH_CACHE): MLServer 1.7.1 in its own venv, and Triton 2.51
(CPU, python backend) when installed.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmesh.modelspec.runtime_labels import runtime_labels

MLSERVER_VERSION = "1.7.1"
TRITON_VERSION = "2.51"


def cache_dir() -> Path:
    return Path(os.environ.get("MODELMESH_CACHE") or Path.home() / ".cache" / "modelmesh")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def child_env(extra_path: str) -> dict[str, str]:
    """The environment of a model server: ours without Python venv settings (it has its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    if extra_path:
        env["PATH"] = f"{extra_path}:{env.get('PATH', '')}"
    return env


@dataclass(frozen=True)
class ServerLaunch:
    """How to start one model server: command, env, when it is ready (its V2 ready URL
    answers 200, else its ports accept connections) and its gRPC ports."""

    cmd: list[str]
    env: dict[str, str]
    ready_url: str | None
    management_port: int  # what the built-in adapter drives
    data_port: int  # where the mesh forwards inference
    ready_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class BuiltinRuntime:
    name: str
    server_type: str  # the adapter's SERVER_TYPE
    spec: dict[str, Any]  # supportedModelFormats and protocolVersions, as in its ClusterServingRuntime
    models_subdir: str  # where the adapter lays out models for this server, under ROOT_MODEL_DIR
    fixed_ports = False  # its ports are chosen here (custom runtimes declare theirs)

    def labels(self) -> list[str]:
        return runtime_labels(self.name, self.spec, rest_proxy_enabled=True)

    def missing(self) -> str | None:
        """Why this runtime cannot start here (and how to fix it), or None."""
        if self.server_type == "mlserver":
            if not (mlserver_venv() / "bin" / "mlserver").exists():
                return f"MLServer {MLSERVER_VERSION} is not installed in {mlserver_venv()} (run scripts/install-mlserver.sh)"
            return None
        if not triton_env_file().exists():
            return f"Triton {TRITON_VERSION} is not installed (run scripts/install-triton.sh)"
        return None

    def launch(self, models_dir: Path, grpc_port: int, http_port: int, metrics_port: int) -> ServerLaunch:
        models_dir.mkdir(parents=True, exist_ok=True)
        ready_url = f"http://127.0.0.1:{http_port}/v2/health/ready"
        if self.server_type == "mlserver":
            venv = mlserver_venv()
            (models_dir / "settings.json").write_text(json.dumps({
                "load_models_at_startup": False, "host": "127.0.0.1", "http_port": http_port,
                "grpc_port": grpc_port, "metrics_port": metrics_port, "parallel_workers": 0,
            }))
            return ServerLaunch([str(venv / "bin" / "mlserver"), "start", str(models_dir)],
                                child_env(str(venv / "bin")), ready_url, grpc_port, grpc_port, (grpc_port,))
        t = triton_env()
        env = child_env(t["TRITON_PATH"])
        env["LD_LIBRARY_PATH"] = t["TRITON_LD_LIBRARY_PATH"]
        cmd = [
            t["TRITON_BIN"], f"--model-repository={models_dir}", f"--backend-directory={t['TRITON_BACKENDS']}",
            "--model-control-mode=explicit", "--strict-model-config=false",
            "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}",
            "--http-address=127.0.0.1", f"--http-port={http_port}", f"--metrics-port={metrics_port}",
            "--allow-gpu-metrics=false", "--exit-timeout-secs=5",
        ]
        return ServerLaunch(cmd, env, ready_url, grpc_port, grpc_port, (grpc_port,))


def mlserver_venv() -> Path:
    return cache_dir() / "venvs" / f"mlserver-{MLSERVER_VERSION}"


def triton_env_file() -> Path:
    return cache_dir() / f"triton-{TRITON_VERSION}" / "env"


def triton_env() -> dict[str, str]:
    out = {}
    for line in triton_env_file().read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            out[key] = value
    return out


MLSERVER = BuiltinRuntime(
    name="mlserver-1.x", server_type="mlserver", models_subdir="_mlserver_models",
    spec={
        "supportedModelFormats": [
            {"name": "sklearn", "version": "0", "autoSelect": True},
            {"name": "xgboost", "version": "1", "autoSelect": True},
            {"name": "lightgbm", "version": "3", "autoSelect": True},
        ],
        "protocolVersions": ["grpc-v2"],
    },
)

TRITON = BuiltinRuntime(
    name="triton-2.x", server_type="triton", models_subdir="_triton_models",
    spec={
        "supportedModelFormats": [
            {"name": "keras", "version": "2", "autoSelect": True},
            {"name": "onnx", "version": "1", "autoSelect": True},
            {"name": "pytorch", "version": "1", "autoSelect": True},
            {"name": "tensorflow", "version": "1", "autoSelect": True},
            {"name": "tensorflow", "version": "2", "autoSelect": True},
            {"name": "tensorrt", "version": "7", "autoSelect": True},
            {"name": "python", "autoSelect": True},  # the one backend bundled with the CPU build used here
        ],
        "protocolVersions": ["grpc-v2"],
    },
)

BUILTIN = {r.name: r for r in (MLSERVER, TRITON)}
ALIASES = {"mlserver": MLSERVER, "triton": TRITON, "mlserver-1.x": MLSERVER, "triton-2.x": TRITON}


class RuntimeChoiceError(ValueError):
    pass


def choose_runtimes(choice: tuple[str, ...]) -> list[BuiltinRuntime]:
    """`auto`: MLServer, plus Triton when installed; `none`: only the config dir's custom
    runtimes; else the named ones (each must be installed)."""
    if choice == ("none",):
        return []
    if not choice or choice == ("auto",):
        chosen = [MLSERVER] + ([TRITON] if TRITON.missing() is None else [])
    else:
        chosen = []
        for name in choice:
            runtime = ALIASES.get(name)
            if runtime is None:
                raise RuntimeChoiceError(f"unknown runtime {name!r} (expected auto, none, mlserver or triton)")
            if runtime not in chosen:
                chosen.append(runtime)
    return chosen


def role_command(role: str) -> list[str]:
    """The built-in adapter and the puller are this binary's `runtime adapter|puller` roles."""
    return [sys.executable, "-m", "modelmesh.cli", "runtime", role]
