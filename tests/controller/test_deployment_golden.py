"""The runtime Deployment per built-in runtime and per config variant, against golden YAML,
plus the properties controller.md names (checked directly so a regenerated golden cannot
silently drop them)."""

import re
from pathlib import Path

import pytest
from golden import BUILTIN, VARIANTS, check_golden, load_runtime, render, runtime_ref

from modelmesh.config.mesh import MeshSettings
from modelmesh.config.settings import load_settings
from modelmesh.controller.deployment import MESH_STOP, WAIT_FOR_MESH, build_deployment
from modelmesh.controller.runtime_spec import validate_runtime
from modelmesh.controller.user_config import ControllerConfig
from modelmesh.mesh.prestop import PRESTOP_PATH


@pytest.mark.parametrize("case", BUILTIN + sorted(VARIANTS))
def test_golden(case):
    check_golden(case, render(case))


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def containers(dep):
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


def test_mlserver_deployment_contract():
    dep = render("mlserver-1.x")
    assert dep["metadata"]["name"] == "modelmesh-serving-mlserver-1.x"
    assert dep["metadata"]["labels"] == {
        "app.kubernetes.io/instance": "modelmesh-controller", "app.kubernetes.io/managed-by": "modelmesh-controller",
        "app.kubernetes.io/name": "modelmesh-controller", "modelmesh-service": "modelmesh-serving",
        "name": "modelmesh-serving-mlserver-1.x"}
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "75%", "maxUnavailable": "15%"}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 90
    names = [c["name"] for c in pod["containers"]]
    assert names == ["mlserver", "mlserver-adapter", "rest-proxy", "mm"]  # mm last
    c = containers(dep)
    mm_env = env_of(c["mm"])
    assert mm_env["MM_SERVICE_NAME"] == "modelmesh-serving" and mm_env["MM_SVC_GRPC_PORT"] == "8033"
    assert mm_env["KV_STORE"] == "etcd:/opt/kserve/mmesh/etcd/etcd_connection"
    assert mm_env["MM_METRICS"] == "prometheus:port=2112;scheme=https"
    assert mm_env["INTERNAL_GRPC_PORT"] == "8085" and mm_env["INTERNAL_SERVING_GRPC_PORT"] == "8001"
    assert mm_env["MM_KVSTORE_PREFIX"] == "mm" and mm_env["MM_DEFAULT_VMODEL_OWNER"] == "ksp"
    assert mm_env["MM_LABELS"] == "mt:lightgbm,mt:lightgbm:3,mt:sklearn,mt:sklearn:0,mt:xgboost,mt:xgboost:1," \
                                  "pv:grpc-v2,pv:v2,rt:mlserver-1.x"
    assert mm_env["WKUBE_POD_IPADDR"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert c["mm"]["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8089, "scheme": "HTTP"}
    assert c["mm"]["livenessProbe"]["httpGet"]["path"] == "/live"
    ad = env_of(c["mlserver-adapter"])
    assert ad["ADAPTER_PORT"] == "8085" and ad["RUNTIME_PORT"] == "8001" and ad["LOADING_CONCURRENCY"] == "2"
    assert ad["CONTAINER_MEM_REQ_BYTES"] == {"resourceFieldRef": {"containerName": "mlserver",
                                                                  "resource": "requests.memory"}}
    assert ad["RUNTIME_VERSION"] == "1.7.1"
    rp = env_of(c["rest-proxy"])
    assert rp["REST_PROXY_LISTEN_PORT"] == "8008" and rp["REST_PROXY_USE_TLS"] == "false"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models-dir"]["emptyDir"]["sizeLimit"] == "1536Mi"  # 1.5 x 1Gi, as the reference writes it
    assert volumes["etcd-config"]["secret"]["secretName"] == "model-serving-etcd"
    assert {"name": "models-dir", "mountPath": "/models"} in c["mlserver"]["volumeMounts"]
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "ClusterServingRuntime"


def test_variants_contract():
    assert "MM_METRICS" in env_of(containers(render("variant-metrics-off"))["mm"])
    assert env_of(containers(render("variant-metrics-off"))["mm"])["MM_METRICS"] == "disabled"  # as the reference
    assert "MM_LOG_EACH_INVOKE" not in env_of(containers(render("mlserver-1.x"))["mm"])  # as the reference: when on
    assert env_of(containers(render("variant-access-logging"))["mm"])["MM_LOG_EACH_INVOKE"] == "true"
    assert "rest-proxy" not in containers(render("variant-rest-proxy-off"))
    assert "pv:v2" not in env_of(containers(render("variant-rest-proxy-off"))["mm"])["MM_LABELS"]
    assert env_of(containers(render("variant-payload-processors"))["mm"])["MM_PAYLOAD_PROCESSORS"] == \
        "http://sink:8080/consume logger://"
    tls = containers(render("variant-tls"))
    assert env_of(tls["mm"])["MM_TLS_CLIENT_AUTH"] == "require"
    assert env_of(tls["rest-proxy"])["REST_PROXY_USE_TLS"] == "true"
    puller = containers(render("variant-custom-puller"))
    assert list(puller) == ["custom", "puller", "rest-proxy", "mm"]
    assert env_of(puller["mm"])["INTERNAL_GRPC_PORT"] == "8086"
    assert env_of(puller["mm"])["INTERNAL_SERVING_GRPC_PORT"] == "8091"
    assert env_of(puller["puller"])["RUNTIME_PORT"] == "8085"
    no_puller = containers(render("variant-custom-no-puller"))
    assert list(no_puller) == ["custom", "rest-proxy", "mm"]
    assert env_of(no_puller["mm"])["INTERNAL_GRPC_PORT"] == "8085"
    pod = render("variant-pod-settings")["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "ml" and pod["metadata"]["annotations"]["note"] == "x"
    assert pod["spec"]["serviceAccountName"] == "mm-sa"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["storage-config"]["secret"]["secretName"] == "my-storage"
    assert vols["models-pvc"]["persistentVolumeClaim"] == {"claimName": "models-pvc", "readOnly": True}
    adapter = {c["name"]: c for c in pod["spec"]["containers"]}["mlserver-adapter"]
    assert {"name": "models-pvc", "mountPath": "/pvc_mounts/models-pvc", "readOnly": True} in adapter["volumeMounts"]
    assert env_of({c["name"]: c for c in pod["spec"]["containers"]}["mm"])["MM_JANITOR_FREQ_SECS"] == "5"


EXPECTED_WAIT_HOOK = {"preStop": {"httpGet": {"path": "/prestop", "port": 8090, "scheme": "HTTP"}}}


@pytest.mark.parametrize("case", BUILTIN + sorted(VARIANTS))
def test_hardening_and_shutdown_order(case):
    """Every container drops all capabilities; the runtime's containers and the adapter/puller
    wait on the mesh's /prestop; the mesh's own preStop starts the hand-off (controller.md)."""
    dep = render(case)
    pod = dep["spec"]["template"]["spec"]
    by_name = containers(dep)
    for c in pod["containers"]:
        assert c["securityContext"] == {"capabilities": {"drop": ["ALL"]}}, c["name"]
    own = {c["name"] for c in load_runtime_containers(case)}
    helpers = {n for n in by_name if n.endswith("-adapter") or n == "puller"}
    assert own and own <= set(by_name)
    for name in own | helpers:
        assert by_name[name]["lifecycle"] == EXPECTED_WAIT_HOOK, name
    assert by_name["mm"]["lifecycle"] == {"preStop": {"exec": {"command": ["/opt/kserve/mmesh/stop.sh", "wait"]}}}
    if "rest-proxy" in by_name:
        assert "lifecycle" not in by_name["rest-proxy"]  # as the reference: stops with the pod
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In",
                                                     "values": ["amd64", "arm64", "s390x"]}]}]}


def load_runtime_containers(case):
    runtime = case if case in BUILTIN else VARIANTS[case][0]
    return load_runtime(runtime)["spec"]["containers"]


def build(spec_changes, containers_changes=None):
    doc = load_runtime("custom")
    doc = {**doc, "spec": {**doc["spec"], **spec_changes}}
    if containers_changes:
        doc["spec"]["containers"] = [{**doc["spec"]["containers"][0], **containers_changes}]
    return build_deployment(runtime_ref(doc), "ns", ControllerConfig.defaults(), 1, "etcd")


def test_runtime_affinity_is_kept_and_completed():
    user_terms = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]}
    pod = build({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": user_terms}}}
                )["spec"]["template"]["spec"]
    # The runtime's own required terms stay as written (another ORed term would loosen them).
    assert pod["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": user_terms}}
    anti = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}
    pod = build({"affinity": anti})["spec"]["template"]["spec"]
    assert pod["affinity"]["podAntiAffinity"] == anti["podAntiAffinity"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["key"] == "kubernetes.io/arch"


def test_quantities_are_sent_as_strings():
    dep = build({"volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": 1073741824}}]},
                {"resources": {"requests": {"cpu": 0.5, "memory": 268435456}, "limits": {"cpu": 5, "memory": "1Gi"}}})
    c = containers(dep)["custom"]
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "268435456"},
                              "limits": {"cpu": "5", "memory": "1Gi"}}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["scratch"]["emptyDir"]["sizeLimit"] == "1073741824"
    assert vols["models-dir"]["emptyDir"]["sizeLimit"] == "1536Mi"
    ovms = containers(render("ovms-1.x"))["ovms"]
    assert ovms["resources"]["limits"]["cpu"] == "5"  # `cpu: 5` in the runtime: a YAML number


def test_runtime_security_context_is_kept():
    c = containers(build({}, {"securityContext": {"runAsUser": 1000}}))["custom"]
    assert c["securityContext"] == {"runAsUser": 1000}


def test_unix_socket_directory_is_shared():
    dep = build({"grpcEndpoint": "unix:/var/run/rt/mgmt.sock", "grpcDataEndpoint": "unix:/var/run/rt/data.sock"})
    for name, c in containers(dep).items():
        if name in ("custom", "puller", "mm"):
            assert {"name": "domain-socket", "mountPath": "/var/run/rt"} in c["volumeMounts"], name
    errors = validate_runtime({"containers": [{"name": "c"}], "grpcEndpoint": "unix:/a/x.sock",
                               "grpcDataEndpoint": "unix:/b/y.sock"}, ["triton"])
    assert any("share one directory" in e for e in errors)
    errors = validate_runtime({"containers": [{"name": "c", "resources": {"limits": {"memory": "lots"}}}],
                               "grpcEndpoint": "port:8085"}, ["triton"])
    assert errors == ["container 'c': resources.limits.memory: 'lots' is not a quantity"]


def test_hooks_match_what_the_mesh_and_the_image_provide():
    """The preStop hooks the controller writes are served by our mesh and our image."""
    get = WAIT_FOR_MESH["preStop"]["httpGet"]
    assert get["path"] == PRESTOP_PATH and get["port"] == load_settings(MeshSettings, {}).prestop_port
    script = MESH_STOP["preStop"]["exec"]["command"][0]
    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "Dockerfile").read_text()
    assert re.search(rf"^COPY (--\S+ )*scripts/mesh-stop\.sh {re.escape(script)}$", dockerfile, re.M), \
        "the image must install scripts/mesh-stop.sh as the mesh container's preStop"
    assert (root / "scripts" / "mesh-stop.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("has_ca, trust", [
    (False, "/opt/kserve/mmesh/tls/tls.crt"),
    (True, "/opt/kserve/mmesh/tls/tls.crt,/opt/kserve/mmesh/tls/ca.crt"),
])
def test_tls_trust_follows_the_secret_keys(has_ca, trust):
    """As the reference: our own certificate is always trusted, the secret's ca.crt only when it
    has one (a trust path naming an absent file stops the mesh at start-up)."""
    config = ControllerConfig.from_mapping({"tls": {"secretName": "mm-tls", "clientAuth": "require"}})
    dep = build_deployment(runtime_ref(load_runtime("mlserver-1.x")), "ns", config, 1, "etcd",
                           tls_secret_has_ca=has_ca)
    c = containers(dep)
    assert env_of(c["mm"])["MM_TLS_TRUST_CERT_PATH"] == trust
    assert env_of(c["rest-proxy"])["MM_TLS_TRUST_CERT_PATH"] == trust
    # Without client auth there is no trust setting, whatever the secret holds.
    plain = ControllerConfig.from_mapping({"tls": {"secretName": "mm-tls"}})
    dep = build_deployment(runtime_ref(load_runtime("mlserver-1.x")), "ns", plain, 1, "etcd", tls_secret_has_ca=has_ca)
    assert "MM_TLS_TRUST_CERT_PATH" not in env_of(containers(dep)["mm"])
