"""The real components, each started on 127.0.0.1 with free ports in a temp dir."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from harness import tools
from harness.process import ManagedProcess, free_port, port_open


def _http_ok(url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None) -> bool:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=1, context=context) as resp:
            return resp.status == 200
    except OSError:
        return False


class EtcdServer:
    """etcd 3.4 (Debian etcd-server). `restart()` keeps ports and data (for outage tests)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def command(self) -> list:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            tools.etcd_bin(), "--name", "t", "--data-dir", self.workdir / "data",
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"t={peer}", "--log-level", "warn",
        ]

    def healthy(self) -> bool:
        return _http_ok(f"{self.endpoint}/health")

    def start(self) -> "EtcdServer":
        env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")}
        self.proc = ManagedProcess("etcd", self.command(), self.workdir / "etcd.log", env=env)
        self.proc.start(self.healthy, timeout=30)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def restart(self) -> None:
        self.stop()
        self.start()


class KubeApiServer:
    """kube-apiserver 1.20.2 with its own etcd, token auth (admin) and RBAC; no kubelet."""

    TOKEN = "modelmesh-test-admin-token"

    def __init__(self, workdir: Path, extra_args: Sequence[str] = (), users: Sequence[str] = ()) -> None:
        """`extra_args`: more kube-apiserver flags; `users`: more token-file lines
        (`token,user,uid,"group1,group2"`), e.g. a service account's user name to test RBAC."""
        self.workdir = workdir
        self.port = free_port()
        self.etcd = EtcdServer(workdir / "etcd")
        self.extra_args = list(extra_args)
        self.users = list(users)
        self.proc: ManagedProcess | None = None
        self.kubeconfig = workdir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "KubeApiServer":
        binary = tools.kube_apiserver_bin()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.etcd.start()
        sa_key, sa_pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        if not sa_key.exists():
            subprocess.run(["openssl", "genrsa", "-out", sa_key, "2048"], check=True, capture_output=True)
            subprocess.run(["openssl", "rsa", "-in", sa_key, "-pubout", "-out", sa_pub], check=True, capture_output=True)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text("".join(f"{line}\n" for line in [f"{self.TOKEN},admin,admin,system:masters", *self.users]))
        cmd = [
            binary, f"--etcd-servers={self.etcd.endpoint}", f"--cert-dir={self.workdir / 'certs'}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
            f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24", "--v=0", *self.extra_args,
        ]
        self.proc = ManagedProcess("kube-apiserver", cmd, self.workdir / "kube-apiserver.log")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        auth = {"Authorization": f"Bearer {self.TOKEN}"}
        self.proc.start(lambda: _http_ok(f"{self.url}/readyz", auth, ctx), timeout=90)
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": self.TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
        self.etcd.stop()


class SinglePortServer:
    """A server process listening on one free loopback port, stopped by PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


class S3Server(SinglePortServer):
    """moto's S3 server: a real HTTP S3 endpoint (any credentials are accepted)."""

    ACCESS_KEY = "testing"
    SECRET_KEY = "testing"
    REGION = "us-east-1"

    def start(self) -> "S3Server":
        cmd = [tools.moto_server_bin(), "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = ManagedProcess("moto-s3", cmd, self.workdir / "moto.log")
        self.proc.start(lambda: _http_ok(f"{self.endpoint}/moto-api/"), timeout=60)
        return self


class MLServer:
    """MLServer 1.7.1 in its own venv; models are loaded through the V2 repository API."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.models_dir = workdir / "models"
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.venv = tools.mlserver_venv()
        self.proc: ManagedProcess | None = None

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def start(self) -> "MLServer":
        self.models_dir.mkdir(parents=True, exist_ok=True)
        (self.models_dir / "settings.json").write_text(json.dumps({
            "load_models_at_startup": False, "host": "127.0.0.1", "http_port": self.http_port,
            "grpc_port": self.grpc_port, "metrics_port": self.metrics_port, "parallel_workers": 0,
        }))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        self.proc = ManagedProcess("mlserver", [self.venv / "bin" / "mlserver", "start", self.models_dir],
                                   self.workdir / "mlserver.log", env=env)
        self.proc.start(lambda: port_open(self.grpc_port)
                        and _http_ok(f"http://127.0.0.1:{self.http_port}/v2/health/ready"), timeout=120)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


class Triton:
    """Triton 2.51 (CPU, python backend) from the nvidia-pytriton wheel, explicit model control."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.repo = workdir / "repository"
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.proc: ManagedProcess | None = None

    def command(self, t: dict[str, str]) -> list:
        return [
            t["TRITON_BIN"], f"--model-repository={self.repo}", f"--backend-directory={t['TRITON_BACKENDS']}",
            "--model-control-mode=explicit", "--strict-model-config=false",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false", "--exit-timeout-secs=5",
        ]

    def healthy(self) -> bool:
        return _http_ok(f"http://127.0.0.1:{self.http_port}/v2/health/ready")

    def start(self) -> "Triton":
        t = tools.triton_env()
        self.repo.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{t['TRITON_PATH']}:{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = t["TRITON_LD_LIBRARY_PATH"]
        self.proc = ManagedProcess("triton", self.command(t), self.workdir / "triton.log", env=env)
        self.proc.start(self.healthy, timeout=60)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
