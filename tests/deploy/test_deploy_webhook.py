"""The shipped ValidatingWebhookConfiguration on an apiserver that calls webhooks: the controller,
started as its installed Deployment says (with the webhook certificate it mounts), admits the
shipped runtimes and rejects invalid autoscaler settings on ServingRuntimes and
ClusterServingRuntimes; with the controller gone, failurePolicy Fail holds runtimes back.

There is no pod network here, so the one field changed from the manifest is how the apiserver
reaches the webhook: `clientConfig.url` (127.0.0.1 and the controller's port) instead of the
Service; rules, path, failure policy and review versions are the shipped ones."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from deploy_helpers import DEPLOY, InstalledController, kubectl, kustomize_into
from harness.services import KubeApiServer

pytestmark = pytest.mark.slow

NS = "mm-hook"
WEBHOOK = "modelmesh-servingruntime.serving.kserve.io"


@pytest.fixture(scope="module")
def webhook_apiserver(tmp_path_factory) -> Iterator[KubeApiServer]:
    server = KubeApiServer(tmp_path_factory.mktemp("hook-kube"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _certs(directory: Path) -> tuple[bytes, bytes, bytes]:
    """A CA and a serving certificate for 127.0.0.1 (what the apiserver dials here)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", "ca.key", "-out", "ca.crt"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "tls.key",
         "-out", "tls.csr"],
        ["openssl", "x509", "-req", "-days", "2", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-extfile", "ext", "-out", "tls.crt"],
    ):
        subprocess.run(cmd, cwd=directory, check=True, capture_output=True)
    return tuple((directory / n).read_bytes() for n in ("ca.crt", "tls.crt", "tls.key"))


def _apply(kc: Path, docs: list[dict], tmp: Path, check: bool = True):
    path = tmp / "apply.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return kubectl(kc, "apply", "--server-side", "--field-manager=modelmesh-install", "-f", str(path), check=check)


def _runtime(kind: str, name: str, autoscaler_class: str) -> dict:
    doc = yaml.safe_load((DEPLOY / "runtimes" / "mlserver-1.x.yaml").read_text())
    doc["kind"] = kind
    doc["metadata"] = {"name": name, "annotations": {"serving.kserve.io/autoscalerClass": autoscaler_class}}
    if kind == "ServingRuntime":
        doc["metadata"]["namespace"] = NS
    return doc


def test_shipped_webhook_admits_and_rejects_runtimes(webhook_apiserver, tmp_path: Path) -> None:
    kc = webhook_apiserver.kubeconfig
    ca, crt, key = _certs(tmp_path / "certs")
    kubectl(kc, "create", "namespace", NS)
    docs = kustomize_into(tmp_path / "render", NS, "default")
    [hook] = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    _apply(kc, crds, tmp_path)
    kubectl(kc, "wait", "--for=condition=established", "--timeout=60s",
            *[f"crd/{d['metadata']['name']}" for d in crds])
    secrets = [
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "modelmesh-webhook-server-cert", "namespace": NS},
         "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode(),
                  "ca.crt": base64.b64encode(ca).decode()}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "model-serving-etcd", "namespace": NS},
         "stringData": {"etcd_connection": '{"endpoints": "http://127.0.0.1:1", "root_prefix": "hook"}'}},
    ]
    _apply(kc, [d for d in docs if d["kind"] not in ("CustomResourceDefinition", "ValidatingWebhookConfiguration")]
           + secrets, tmp_path)

    controller = InstalledController(kc, NS, kc, tmp_path / "controller").start()
    try:
        service = hook["webhooks"][0]["clientConfig"].pop("service")
        hook["webhooks"][0]["clientConfig"] = {
            "url": f"https://127.0.0.1:{controller.webhook_port}{service['path']}",
            "caBundle": base64.b64encode(ca).decode()}
        _apply(kc, [hook], tmp_path)

        # The shipped runtimes pass (the webhook is called for them: the next checks show it answers).
        runtimes = kustomize_into(tmp_path / "rt", NS, "namespace-runtimes")
        _apply(kc, runtimes, tmp_path)
        _apply(kc, kustomize_into(tmp_path / "crt", NS, "runtimes"), tmp_path)

        for kind in ("ServingRuntime", "ClusterServingRuntime"):
            proc = _apply(kc, [_runtime(kind, f"bad-{kind.lower()}", "knative")], tmp_path, check=False)
            assert proc.returncode != 0, proc.stdout
            assert 'admission webhook "servingruntime.modelmesh-webhook-server.default" denied the request' \
                in proc.stderr, proc.stderr
            assert "serving.kserve.io/autoscalerClass must be hpa, got 'knative'" in proc.stderr
        _apply(kc, [_runtime("ServingRuntime", "good-hpa", "hpa")], tmp_path)
    finally:
        controller.stop()

    # failurePolicy Fail: without the controller no runtime gets in.
    proc = _apply(kc, [_runtime("ServingRuntime", "while-down", "hpa")], tmp_path, check=False)
    assert proc.returncode != 0 and "failed calling webhook" in proc.stderr, proc.stderr
