"""deploy/ on the real kube-apiserver: server-side dry-run of every manifest in both scopes;
install.sh creates its objects, a second run changes none, --delete removes them; the controller,
started as its installed Deployment says and with only the installed RBAC, reconciles a shipped
runtime and an example InferenceService into a runtime Deployment; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from deploy_helpers import (
    DEPLOY,
    InstalledController,
    eventually,
    get,
    install,
    kubectl,
    kustomize_into,
    run,
    snapshot,
)

pytestmark = pytest.mark.slow

CRDS = ["inferenceservices.serving.kserve.io", "predictors.serving.kserve.io", "servingruntimes.serving.kserve.io"]
RUNTIMES = ["mlserver-1.x", "ovms-1.x", "torchserve-0.x", "triton-2.x"]
CONTROLLER_LABEL = "app.kubernetes.io/managed-by=modelmesh-controller"


def dry_run(kubeconfig: Path, docs: list[dict], tmp: Path) -> list[str]:
    path = tmp / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out = kubectl(kubeconfig, "apply", "--server-side", "--dry-run=server", "--field-manager=modelmesh-install",
                  "-f", str(path)).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == len(docs) and all("(server dry run)" in ln for ln in lines), out
    return lines


def test_server_side_dry_run_of_every_manifest_in_both_scopes(deploy_cluster, tmp_path: Path) -> None:
    kc = deploy_cluster.kubeconfig
    kubectl(kc, "create", "namespace", "mm-dryrun")
    try:
        for base, runtimes in (("default", "runtimes"), ("namespace-scope", "namespace-runtimes")):
            controller = kustomize_into(tmp_path / base, "mm-dryrun", base)
            dry_run(kc, controller, tmp_path)
            # The cert-manager component's own kinds need cert-manager's CRDs, which this apiserver
            # lacks; the webhook configuration it annotates is checked here.
            with_cm = [d for d in kustomize_into(tmp_path / f"{base}-cm", "mm-dryrun", base, ["certmanager"])
                       if not d["apiVersion"].startswith("cert-manager.io/")]
            dry_run(kc, with_cm, tmp_path)
            assert get(kc, "deployment", "modelmesh-controller", "mm-dryrun") is None  # nothing was created
            # Custom resources need their CRDs to exist: create them, then dry-run the CRs.
            crds = [d for d in controller if d["kind"] == "CustomResourceDefinition"]
            (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all(crds))
            kubectl(kc, "apply", "--server-side", "--field-manager=modelmesh-install", "-f", str(tmp_path / "crds.yaml"))
            kubectl(kc, "wait", "--for=condition=established", "--timeout=60s",
                    *[f"crd/{d['metadata']['name']}" for d in crds])
            for overlay in (runtimes, "example-isvcs", "quickstart"):
                dry_run(kc, kustomize_into(tmp_path / f"{base}-{overlay}", "mm-dryrun", overlay), tmp_path)
            kubectl(kc, "delete", "-f", str(tmp_path / "crds.yaml"))
    finally:
        kubectl(kc, "delete", "namespace", "mm-dryrun", "--wait=false")


def _installed_objects(kc: Path, namespace: str, cluster_scope: bool) -> None:
    for crd in CRDS:
        assert get(kc, "crd", crd), crd
    assert bool(get(kc, "crd", "clusterservingruntimes.serving.kserve.io")) == cluster_scope
    assert get(kc, "serviceaccount", "modelmesh-controller", namespace)
    assert get(kc, "configmap", "model-serving-config-defaults", namespace)
    assert get(kc, "service", "modelmesh-webhook-server-service", namespace)
    hook = get(kc, "validatingwebhookconfiguration", "modelmesh-servingruntime.serving.kserve.io")
    service = hook["webhooks"][0]["clientConfig"]["service"]
    assert service["namespace"] == namespace
    # --enable-self-signed-ca: the CA in the webhook configuration is the one in the secret.
    secret = get(kc, "secret", "modelmesh-webhook-server-cert", namespace)
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    dep = get(kc, "deployment", "modelmesh-controller", namespace)
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NAMESPACE_SCOPE"] == str(not cluster_scope).lower()
    etcd = json.loads(__import__("base64").b64decode(get(kc, "secret", "model-serving-etcd", namespace)
                                                     ["data"]["etcd_connection"]))
    assert etcd["endpoints"] == f"http://etcd.{namespace}.svc:2379"
    if cluster_scope:
        assert get(kc, "clusterrole", "modelmesh-controller-role")
        binding = get(kc, "clusterrolebinding", "modelmesh-controller-rolebinding")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelmesh-controller",
                                        "namespace": namespace}]
        for name in RUNTIMES:
            assert get(kc, "clusterservingruntime", name), name
    else:
        assert get(kc, "role", "modelmesh-controller-role", namespace)
        assert get(kc, "clusterrole", "modelmesh-controller-role") is None
        for name in RUNTIMES:
            assert get(kc, "servingruntime", name, namespace), name


def _reconciles_example(deploy_cluster, namespace: str, isvc_namespace: str, tmp: Path,
                        mm_resources: dict | None = None) -> None:
    """`mm_resources`: edit modelMeshResources in the installed model-serving-config-defaults
    first (as a platform team would) and expect them on the runtime's mm container."""
    kc = deploy_cluster.kubeconfig
    if mm_resources is not None:
        cm = get(kc, "configmap", "model-serving-config-defaults", namespace)
        defaults = yaml.safe_load(cm["data"]["config-defaults.yaml"])
        defaults["modelMeshResources"] = mm_resources
        kubectl(kc, "patch", "configmap", "model-serving-config-defaults", "-n", namespace, "--type", "merge",
                "-p", json.dumps({"data": {"config-defaults.yaml": yaml.safe_dump(defaults)}}))
    controller = InstalledController(kc, namespace, deploy_cluster.as_controller(namespace), tmp).start()
    try:
        kubectl(kc, "apply", "-n", isvc_namespace, "-f",
                str(DEPLOY / "example-isvcs" / "example-sklearn-mnist-svm.yaml"))

        def runtime_deployment():
            dep = get(kc, "deployment", "modelmesh-serving-mlserver-1.x", isvc_namespace)
            return dep if dep and dep["spec"]["replicas"] > 0 else None

        dep = eventually(runtime_deployment, 60, "mlserver-1.x Deployment scaled up for the example ISVC")
        containers = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
        image = get(kc, "deployment", "modelmesh-controller", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert {containers[n]["image"] for n in ("mm", "mlserver-adapter", "rest-proxy")} == {image}
        if mm_resources is not None:
            assert containers["mm"]["resources"] == mm_resources
        assert containers["mlserver"]["image"].startswith("seldonio/mlserver:")

        def isvc_status():
            isvc = get(kc, "inferenceservice", "example-sklearn-mnist-svm", isvc_namespace)
            return (isvc.get("status") or {}).get("modelStatus")

        eventually(isvc_status, 30, "status written on the example InferenceService")
        assert get(kc, "lease", "modelmesh-controller-leader-lock", namespace)["spec"]["holderIdentity"] == \
            controller.pod_name
        log = controller.log()
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
    finally:
        controller.stop()


def test_install_cluster_scope_rerun_reconcile_delete(deploy_cluster, tmp_path: Path) -> None:
    kc = deploy_cluster.kubeconfig
    ns, user_ns = "mm-cluster", "mm-cluster-user"
    kubectl(kc, "create", "namespace", user_ns)
    args = ["--namespace", ns, "--quickstart", "--no-wait", "--enable-self-signed-ca", "--user-namespaces", user_ns]
    first = install(kc, *args)
    assert "modelmesh installed in mm-cluster" in first.stderr
    _installed_objects(kc, ns, cluster_scope=True)
    assert get(kc, "namespace", user_ns)["metadata"]["labels"]["modelmesh-enabled"] == "true"
    assert "localMinIO" in get(kc, "secret", "storage-config", user_ns)["data"]

    before = snapshot(kc)
    second = install(kc, *args)
    assert snapshot(kc) == before, "the second install.sh run changed objects"
    assert "unchanged" in second.stderr

    _reconciles_example(deploy_cluster, ns, user_ns, tmp_path)

    install(kc, "--namespace", ns, "--user-namespaces", user_ns, "--delete")
    for crd in [*CRDS, "clusterservingruntimes.serving.kserve.io"]:
        assert get(kc, "crd", crd) is None, crd
    for kind, name in (("clusterrole", "modelmesh-controller-role"),
                       ("clusterrolebinding", "modelmesh-controller-rolebinding"),
                       ("validatingwebhookconfiguration", "modelmesh-servingruntime.serving.kserve.io")):
        assert get(kc, kind, name) is None, name
    for kind, name in (("deployment", "modelmesh-controller"), ("deployment", "etcd"), ("deployment", "minio"),
                       ("secret", "model-serving-etcd"), ("secret", "modelmesh-webhook-server-cert"),
                       ("serviceaccount", "modelmesh-controller"), ("configmap", "model-serving-config-defaults")):
        assert get(kc, kind, name, ns) is None, (kind, name)
    for n in (ns, user_ns):
        left = kubectl(kc, "get", "deployments,services,configmaps,secrets", "-n", n, "-l", CONTROLLER_LABEL,
                       "-o", "name").stdout
        assert not left.strip(), left
    assert "modelmesh-enabled" not in (get(kc, "namespace", user_ns)["metadata"].get("labels") or {})
    assert get(kc, "secret", "storage-config", user_ns) is None  # the quickstart's copy


def test_install_namespace_scope_rerun_reconcile_delete(deploy_cluster, tmp_path: Path) -> None:
    kc = deploy_cluster.kubeconfig
    ns = "mm-nsscope"
    args = ["--namespace", ns, "--quickstart", "--no-wait", "--enable-self-signed-ca", "--namespace-scope-mode"]
    install(kc, *args)
    _installed_objects(kc, ns, cluster_scope=False)
    before = snapshot(kc)
    install(kc, *args)
    assert snapshot(kc) == before, "the second install.sh run changed objects"

    # The installed defaults ConfigMap reaches the controller through the manifest's mount.
    _reconciles_example(deploy_cluster, ns, ns, tmp_path, mm_resources={"requests": {"cpu": "250m", "memory": "320Mi"},
                                                                        "limits": {"cpu": "2", "memory": "320Mi"}})

    install(kc, "--namespace", ns, "--namespace-scope-mode", "--delete")
    for crd in CRDS:
        assert get(kc, "crd", crd) is None, crd
    for kind, name in (("deployment", "modelmesh-controller"), ("role", "modelmesh-controller-role"),
                       ("deployment", "modelmesh-serving-mlserver-1.x"), ("configmap", "tc-config")):
        assert get(kc, kind, name, ns) is None, (kind, name)


def _error(kc: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = install(kc, *args, check=False, env=env)
    assert proc.returncode != 0, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("install.sh: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_install_errors_are_clear(deploy_cluster, tmp_path: Path) -> None:
    kc = deploy_cluster.kubeconfig
    assert "kubectl not found" in _error(kc, "--quickstart", env={"KUBECTL": "kubectl-that-is-not-there"})

    unreachable = tmp_path / "unreachable.kubeconfig"
    conf = json.loads(kc.read_text())
    conf["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable.write_text(json.dumps(conf))
    assert "cannot reach the cluster of kubeconfig context 'test'" in _error(unreachable, "--quickstart")

    assert "not allowed to create CustomResourceDefinitions" in _error(deploy_cluster.as_nobody(), "--quickstart")
    assert "not allowed to delete CustomResourceDefinitions" in _error(deploy_cluster.as_nobody(), "--delete")

    message = _error(kc, "--namespace", "mm-no-etcd", "--no-wait", "--enable-self-signed-ca")
    assert "etcd secret 'model-serving-etcd' is missing in namespace mm-no-etcd" in message
    assert "--quickstart" in message
    assert get(kc, "crd", "servingruntimes.serving.kserve.io") is None  # stopped before installing anything

    assert "cert-manager is not installed" in _error(kc, "--namespace", "mm-no-cm", "--quickstart", "--no-wait")
    # Without --no-wait it waits for pods, which never run on this kubelet-less apiserver.
    slow = {"MODELMESH_INSTALL_TIMEOUT": "2s"}
    assert "etcd / MinIO did not become ready in 2s" in _error(kc, "--namespace", "mm-wait", "--quickstart", env=slow)
    assert "the controller did not become ready in 2s" in _error(
        kc, "--namespace", "mm-wait", "--enable-self-signed-ca", env=slow)
    install(kc, "--namespace", "mm-wait", "--delete")
    assert "unknown option '--bogus'" in _error(kc, "--bogus")
    assert "needs cluster scope" in _error(kc, "--namespace-scope-mode", "--user-namespaces", "a")
    run(["bash", DEPLOY / "install.sh", "--help"])


def _stand_in_cert_manager_crds(kc: Path, tmp: Path) -> None:
    """STAND-IN for cert-manager, which cannot run here: only its two CRDs (no schema, no
    controller), so install.sh's cert-manager path can create its Issuer and Certificate."""
    docs = []
    for kind, plural in (("Certificate", "certificates"), ("Issuer", "issuers")):
        docs.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.cert-manager.io"},
            "spec": {"group": "cert-manager.io", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
        })
    (tmp / "cert-manager-crds.yaml").write_text(yaml.safe_dump_all(docs))
    kubectl(kc, "apply", "-f", str(tmp / "cert-manager-crds.yaml"))
    kubectl(kc, "wait", "--for=condition=established", "--timeout=60s", "crd/certificates.cert-manager.io",
            "crd/issuers.cert-manager.io")


def test_install_with_cert_manager_and_dev_logging(deploy_cluster, tmp_path: Path) -> None:
    kc = deploy_cluster.kubeconfig
    _stand_in_cert_manager_crds(kc, tmp_path)
    ns = "mm-certmanager"
    try:
        install(kc, "--namespace", ns, "--quickstart", "--no-wait", "--dev-mode-logging")
        cert = get(kc, "certificate.cert-manager.io", "modelmesh-webhook-server-cert", ns)
        assert cert["spec"]["dnsNames"] == [f"modelmesh-webhook-server-service.{ns}.svc",
                                            f"modelmesh-webhook-server-service.{ns}.svc.cluster.local"]
        assert cert["spec"]["secretName"] == "modelmesh-webhook-server-cert"
        assert get(kc, "issuer.cert-manager.io", "modelmesh-selfsigned-issuer", ns)
        hook = get(kc, "validatingwebhookconfiguration", "modelmesh-servingruntime.serving.kserve.io")
        assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{ns}/modelmesh-webhook-server-cert"
        assert "caBundle" not in hook["webhooks"][0]["clientConfig"]  # cert-manager injects it
        assert get(kc, "secret", "modelmesh-webhook-server-cert", ns) is None  # cert-manager's to make
        dep = get(kc, "deployment", "modelmesh-controller", ns)
        env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["DEV_MODE_LOGGING"] == "true"
        before = snapshot(kc)
        install(kc, "--namespace", ns, "--quickstart", "--no-wait", "--dev-mode-logging")
        assert snapshot(kc) == before
        install(kc, "--namespace", ns, "--delete")
        assert get(kc, "certificate.cert-manager.io", "modelmesh-webhook-server-cert", ns) is None
        assert get(kc, "issuer.cert-manager.io", "modelmesh-selfsigned-issuer", ns) is None
    finally:
        install(kc, "--namespace", ns, "--delete")
        kubectl(kc, "delete", "-f", str(tmp_path / "cert-manager-crds.yaml"))  # other tests expect none
