"""deploy/ without a cluster: every overlay builds with `kubectl kustomize`, each holds what its
scope needs, the shipped defaults are generated from the code, the image's entrypoint runs the
manifests' args, and the Dockerfile and install.sh pass their linters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deploy_helpers import DEPLOY, INSTALL_SH, ROOT, entrypoint, kustomize, kustomize_into, run

from modelmesh.cli import build_parser
from modelmesh.controller.user_config import DEFAULTS, Image

OVERLAYS = sorted(p.parent.name for name in ("kustomization.yaml", "Kustomization") for p in DEPLOY.glob(f"*/{name}")
                  if yaml.safe_load(p.read_text()).get("kind") != "Component")


def test_crds_directory_applies_with_kubectl_apply_f() -> None:
    """`kubectl apply -f deploy/crds/` (README) and the controller tests read every *.yaml there."""
    for path in (DEPLOY / "crds").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["kind"] == "CustomResourceDefinition", path


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def controller_container(docs: list[dict]) -> dict:
    [dep] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "modelmesh-controller"]
    [container] = dep["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def test_every_overlay_builds() -> None:
    assert {"default", "namespace-scope", "runtimes", "namespace-runtimes", "quickstart", "example-isvcs",
            "crds", "config-defaults"} <= set(OVERLAYS)
    for overlay in OVERLAYS:
        docs = kustomize(DEPLOY / overlay)
        assert docs, overlay
        for d in docs:
            assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), (overlay, d)


def test_cert_manager_component_builds_in_any_namespace(tmp_path: Path) -> None:
    for base in ("default", "namespace-scope"):
        docs = by_kind(kustomize_into(tmp_path / base, "team-a", base, ["certmanager"]))
        [cert] = docs["Certificate"]
        assert cert["metadata"]["namespace"] == "team-a"
        assert cert["spec"]["secretName"] == "modelmesh-webhook-server-cert"
        [hook] = docs["ValidatingWebhookConfiguration"]
        assert "cert-manager.io/inject-ca-from" in hook["metadata"]["annotations"]


def test_cluster_scope_overlay() -> None:
    docs = kustomize(DEPLOY / "default")
    kinds = by_kind(docs)
    assert sorted(c["metadata"]["name"] for c in kinds["CustomResourceDefinition"]) == [
        "clusterservingruntimes.serving.kserve.io", "inferenceservices.serving.kserve.io",
        "predictors.serving.kserve.io", "servingruntimes.serving.kserve.io"]
    [role] = kinds["ClusterRole"]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert {"namespaces", "clusterservingruntimes", "deployments", "secrets", "inferenceservices/status"} <= resources
    assert "Role" in kinds and kinds["Role"][0]["metadata"]["name"] == "modelmesh-controller-leader-election-role"
    assert env_of(controller_container(docs))["NAMESPACE_SCOPE"] == "false"
    for d in docs:
        if d["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                             "ValidatingWebhookConfiguration"):
            assert d["metadata"]["namespace"] == "modelmesh-serving", d["metadata"]


def test_namespace_scope_overlay() -> None:
    docs = kustomize(DEPLOY / "namespace-scope")
    kinds = by_kind(docs)
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert "clusterservingruntimes.serving.kserve.io" not in {c["metadata"]["name"]
                                                             for c in kinds["CustomResourceDefinition"]}
    assert len(kinds["CustomResourceDefinition"]) == 3
    assert {r["metadata"]["name"] for r in kinds["Role"]} == {"modelmesh-controller-role",
                                                              "modelmesh-controller-leader-election-role"}
    assert env_of(controller_container(docs))["NAMESPACE_SCOPE"] == "true"


def test_controller_deployment() -> None:
    c = controller_container(kustomize(DEPLOY / "default"))
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
    env = env_of(c)
    assert env["LEADER_ELECT"] == "true"
    assert env["ETCD_SECRET_NAME"] == "model-serving-etcd"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": int(env["HEALTH_PROBE_PORT"])}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": int(env["HEALTH_PROBE_PORT"])}
    assert ports["webhook"] == int(env["WEBHOOK_PORT"]) == 9443
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert env["WEBHOOK_CERT_DIR"] in mounts and "/tmp" in mounts


def test_runtimes_in_both_kinds() -> None:
    cluster = kustomize(DEPLOY / "runtimes")
    namespaced = kustomize(DEPLOY / "namespace-runtimes")
    names = ["mlserver-1.x", "ovms-1.x", "torchserve-0.x", "triton-2.x"]
    assert sorted(d["metadata"]["name"] for d in cluster) == names
    assert {d["kind"] for d in cluster} == {"ClusterServingRuntime"}
    assert sorted(d["metadata"]["name"] for d in namespaced) == names
    assert {d["kind"] for d in namespaced} == {"ServingRuntime"}
    for d in cluster:
        spec = d["spec"]
        assert spec["multiModel"] is True and spec["grpcEndpoint"] == "port:8085"
        assert spec["builtInAdapter"]["serverType"] in DEFAULTS["builtInServerTypes"]
        # The model server is the vendor's; no mesh-side container is written into a runtime.
        assert [c["name"] for c in spec["containers"]] == [spec["builtInAdapter"]["serverType"]]


def test_one_image_for_every_mesh_side_container() -> None:
    """The controller runs the image the mesh-side containers (mm, adapter/puller, rest-proxy) get
    by default, and their commands start with the image's entrypoint."""
    controller_image = controller_container(kustomize(DEPLOY / "default"))["image"]
    shipped = yaml.safe_load((DEPLOY / "config-defaults" / "config-defaults.yaml").read_text())
    for key in ("modelMeshImage", "storageHelperImage"):
        assert Image.of(shipped[key]).ref == controller_image, key
        assert shipped[key]["command"][0] == entrypoint()[0]
    assert Image.of(shipped["restProxy"]["image"]).ref == controller_image
    assert shipped["restProxy"]["image"]["command"][0] == entrypoint()[0]


def test_entrypoint_runs_the_manifest_args() -> None:
    """ENTRYPOINT + the controller's args parse as `modelmesh controller`, and each command the
    controller gives runtime containers is a mode of the same binary."""
    c = controller_container(kustomize(DEPLOY / "default"))
    assert entrypoint() == ["modelmesh"]
    assert "command" not in c  # the entrypoint stays the image's
    assert build_parser().parse_args(c["args"]).mode == "controller"
    for image in (DEFAULTS["modelMeshImage"], DEFAULTS["restProxy"]["image"]):
        ns = build_parser().parse_args(image["command"][1:])
        assert ns.mode == "runtime"
    for role in ("adapter", "puller"):
        ns = build_parser().parse_args([*DEFAULTS["storageHelperImage"]["command"][1:], role])
        assert (ns.mode, ns.role) == ("runtime", role)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'{entrypoint()[0]} = "modelmesh.cli:main"' in pyproject


def test_quickstart_secrets_name_their_services_in_the_namespace() -> None:
    docs = by_kind(kustomize(DEPLOY / "quickstart"))
    secrets = {s["metadata"]["name"]: s for s in docs["Secret"]}
    assert "etcd.modelmesh-serving.svc:2379" in secrets["model-serving-etcd"]["stringData"]["etcd_connection"]
    assert "minio.modelmesh-serving.svc:9000" in secrets["storage-config"]["stringData"]["localMinIO"]
    assert {d["metadata"]["name"] for d in docs["Deployment"]} == {"etcd", "minio"}


def test_example_isvcs_use_the_quickstart_storage() -> None:
    for isvc in kustomize(DEPLOY / "example-isvcs"):
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "ModelMesh"
        assert isvc["spec"]["predictor"]["model"]["storage"]["key"] == "localMinIO"


def test_generated_reference_is_current() -> None:
    """config-defaults.yaml and docs/configuration.md are generated from the code."""
    proc = run([sys.executable, ROOT / "scripts" / "gen_reference.py", "--check"], check=False)
    assert proc.returncode == 0, proc.stderr
    shipped = yaml.safe_load((DEPLOY / "config-defaults" / "config-defaults.yaml").read_text())
    assert shipped == DEFAULTS
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for key in DEFAULTS:
        assert f"| `{key}` |" in doc


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} is missing: pip install -e .[dev] installs it (scripts/bootstrap.sh)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    proc = subprocess.run([_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, check=False,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_one_non_root_multi_stage_image() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    assert sum(ln.startswith("FROM ") for ln in lines) >= 2
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1] != "0"  # numeric: runAsNonRoot can check it


def test_install_sh_passes_shellcheck() -> None:
    proc = subprocess.run([_tool("shellcheck"), str(INSTALL_SH)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
