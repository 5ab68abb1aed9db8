"""Helpers of the deploy/ tests: kubectl, kustomize builds, install.sh and the controller started
as its installed Deployment says (a module of its own: test modules import it by name)."""

from __future__ import annotations

import base64
import json
import os
import posixpath
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from harness.process import ManagedProcess, free_port, port_open

from modelmesh.config.controller import DEFAULTS_FILE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTALL_SH = DEPLOY / "install.sh"
KUBECTL_MISSING = "kubectl is needed for the deploy tests: scripts/bootstrap.sh installs it (make deps)"


def kubectl_bin() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if not found:
        raise AssertionError(KUBECTL_MISSING)
    return found


def run(cmd: Sequence[str], kubeconfig: Path | None = None, check: bool = True, timeout: float = 180,
        env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    if kubeconfig is not None:
        full_env["KUBECONFIG"] = str(kubeconfig)
    # install.sh finds kubectl on PATH; the venv's bin goes last (the wheel's kubectl, if any).
    full_env["PATH"] = f"{full_env.get('PATH', '')}:{Path(sys.executable).parent}"
    proc = subprocess.run([str(c) for c in cmd], check=False, env=full_env, capture_output=True, text=True, timeout=timeout,
                          input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(kubeconfig: Path | None, *args: str, check: bool = True, stdin: str | None = None):
    return run([kubectl_bin(), *args], kubeconfig, check=check, stdin=stdin)


def kustomize(path: Path) -> list[dict[str, Any]]:
    out = kubectl(None, "kustomize", str(path)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kustomize_into(tmp: Path, namespace: str, base: str, components: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Build deploy/<base> into `namespace` through a kustomization of our own (as install.sh does)."""
    tmp.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(DEPLOY, tmp)
    doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": namespace,
           "resources": [f"{rel}/{base}"], "components": [f"{rel}/{c}" for c in components]}
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return kustomize(tmp)


def install(kubeconfig: Path, *args: str, check: bool = True, env: dict[str, str] | None = None):
    return run(["bash", INSTALL_SH, *args], kubeconfig, check=check, env=env, timeout=300)


def get(kubeconfig: Path, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = kubectl(kubeconfig, *args).stdout
    return json.loads(out) if out.strip() else None


def snapshot(kubeconfig: Path) -> dict[str, str]:
    """kind/namespace/name -> resourceVersion of every listable object (events left out)."""
    kinds = kubectl(kubeconfig, "api-resources", "--verbs=list", "-o", "name").stdout.split()
    kinds = [k for k in kinds if not k.startswith("events")]
    out = kubectl(kubeconfig, "get", ",".join(kinds), "-A", "-o", "json").stdout
    return {f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o["metadata"].get("resourceVersion", "")
            for o in json.loads(out)["items"]}


def sa_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """The admin kubeconfig with another user's bearer token (a service account's, for RBAC)."""
    kc = json.loads(admin_kubeconfig.read_text())
    kc["users"][0]["user"]["token"] = token
    path.write_text(json.dumps(kc))
    return path


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT, from the Dockerfile."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT"):
            return json.loads(line.split(None, 1)[1])
    raise AssertionError("Dockerfile has no ENTRYPOINT")


class InstalledController:
    """`modelmesh controller` started the way its installed Deployment says: the image's entrypoint
    with the container's args and env (fieldRefs resolved, secrets mounted as files), as the
    Deployment's service account. What a pod network would isolate (the three ports) gets free
    ports here; everything else is the manifest's."""

    def __init__(self, kubeconfig: Path, namespace: str, sa_kubeconfig_path: Path, workdir: Path) -> None:
        dep = get(kubeconfig, "deployment", "modelmesh-controller", namespace)
        assert dep is not None, f"no modelmesh-controller Deployment in {namespace}"
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.pod_name = "modelmesh-controller-test-0"
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                field = item["valueFrom"]["fieldRef"]["fieldPath"]
                env[item["name"]] = {"metadata.name": self.pod_name, "metadata.namespace": namespace}[field]
        # Mount the secret and ConfigMap volumes as the kubelet would (the webhook certificate,
        # model-serving-config-defaults), and point the controller at the copies.
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts") or []}
        for volume in pod.get("volumes") or []:
            if volume["name"] not in mounts or not ({"secret", "configMap"} & set(volume)):
                continue
            target = workdir / "mounts" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                secret = get(kubeconfig, "secret", volume["secret"]["secretName"], namespace)
                assert secret is not None, f"secret {volume['secret']['secretName']} of the Deployment is missing"
                for key, value in (secret.get("data") or {}).items():
                    (target / key).write_bytes(base64.b64decode(value))
            else:
                cm = get(kubeconfig, "configmap", volume["configMap"]["name"], namespace)
                assert cm is not None, f"ConfigMap {volume['configMap']['name']} of the Deployment is missing"
                for key, value in (cm.get("data") or {}).items():
                    (target / key).write_text(value)
            if env.get("WEBHOOK_CERT_DIR") == mounts[volume["name"]]:
                env["WEBHOOK_CERT_DIR"] = str(target)
            # The controller reads its defaults at the reference's path, which this machine lacks:
            # a volume mounted there is handed over by path (a file it names must exist).
            if mounts[volume["name"]] == posixpath.dirname(DEFAULTS_FILE):
                env["CONFIG_DEFAULTS_FILE"] = str(target / posixpath.basename(DEFAULTS_FILE))
        self.health_port, self.metrics_port, self.webhook_port = free_port(), free_port(), free_port()
        env.update(METRICS_PORT=str(self.metrics_port), HEALTH_PROBE_PORT=str(self.health_port),
                   WEBHOOK_PORT=str(self.webhook_port), KUBECONFIG=str(sa_kubeconfig_path))
        self.env = env
        self.container = container
        entry = entrypoint()
        binary = Path(sys.executable).parent / entry[0]
        assert binary.exists(), f"the image's entrypoint {entry[0]} is not installed next to {sys.executable}"
        self.cmd = [str(binary), *entry[1:], *(container.get("command") or [])[1:], *(container.get("args") or [])]
        base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME", "LANG", "TMPDIR")}
        self.proc = ManagedProcess("controller", self.cmd, workdir / "controller.log", env={**base_env, **env})

    def start(self) -> InstalledController:
        probe = self.container["readinessProbe"]["httpGet"]
        assert probe["path"] == "/readyz"
        self.proc.start(lambda: port_open(self.health_port) and _http_ok(self.health_port, probe["path"]), timeout=60)
        return self

    def stop(self) -> None:
        self.proc.stop()

    def log(self) -> str:
        return self.proc.log_path.read_text(errors="replace")


def _http_ok(port: int, path: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False
