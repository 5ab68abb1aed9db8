"""Where the real components live on this machine (installed by `make deps`).

A missing component fails the test with the command that installs it, never a skip:
a skipped real-service test would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CACHE_DIR = Path(os.environ.get("MODELMESH_CACHE", Path.home() / ".cache" / "modelmesh"))


def _missing(what: str, fix: str) -> None:
    pytest.fail(f"{what} is not installed; run `{fix}` (or `make deps`)", pytrace=False)


def etcd_bin() -> str:
    path = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if not path:
        _missing("etcd", "apt-get install -y etcd-server")
    return path


def kube_apiserver_bin() -> str:
    path = CACHE_DIR / "kube-apiserver-1.20.2" / "kube-apiserver"
    if not path.exists():
        _missing("kube-apiserver 1.20.2", "scripts/install-kube-apiserver.sh")
    return str(path)


def mlserver_venv() -> Path:
    venv = CACHE_DIR / "venvs" / "mlserver-1.7.1"
    if not (venv / "bin" / "mlserver").exists():
        _missing("MLServer 1.7.1", "scripts/install-mlserver.sh")
    return venv


def triton_env() -> dict[str, str]:
    env_file = CACHE_DIR / "triton-2.51" / "env"
    if not env_file.exists():
        _missing("Triton 2.51", "scripts/install-triton.sh")
    out = {}
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            out[key] = value
    return out


def moto_server_bin() -> str:
    path = shutil.which("moto_server") or str(Path(os.sys.executable).parent / "moto_server")
    if not Path(path).exists():
        _missing("moto server", "pip install 'moto[s3,server]' flask flask-cors")
    return path
