"""ServingRuntime handling against the real kube-apiserver: the applied Deployment, tc-config,
the Service, validation reasons, removal, HPA, scale to zero and config live reload."""

from __future__ import annotations

import asyncio
import json

import pytest
from controller_helpers import config_map, eventually, runtime_doc, start_controller
from golden import runtime_ref

from modelmesh.controller.deployment import build_deployment
from modelmesh.controller.kube import (
    CONFIG_MAP,
    DEPLOYMENT,
    EVENT,
    PREDICTOR,
    SERVICE,
    SERVING_RUNTIME,
    hpa_kind,
)
from modelmesh.controller.user_config import ControllerConfig

NS = "runtimes-ns"
GRACE_S = 3
CONFIG = {"podsPerRuntime": 1, "scaleToZero": {"gracePeriodSeconds": GRACE_S}, "modelMeshEndpoint": ""}
DEP = "modelmesh-serving-mlserver-1.x"


@pytest.fixture(scope="module")
async def env(kube, mesh_endpoint):
    controller = await start_controller(kube, NS, {**CONFIG, "modelMeshEndpoint": mesh_endpoint})
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    yield kube, controller
    await controller.stop()


def subset(expected, actual, path="") -> list[str]:
    """Where `actual` (read back, with server defaults) does not contain `expected`."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a map"]
        return [d for k, v in expected.items() for d in subset(v, actual.get(k), f"{path}.{k}")]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: list differs"]
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for d in subset(e, a, f"{path}[{i}]")]
    return [] if expected == actual or (expected == "" and actual is None) else [f"{path}: {expected!r} != {actual!r}"]


async def replicas_is(kube, n, name=None):
    return await replicas(kube, name or DEP) == n


def predictor(name, model_type="sklearn"):
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"modelType": {"name": model_type}, "storage": {"path": "m"}}}


async def replicas(kube, name=DEP):
    dep = await kube.get(DEPLOYMENT, name, NS)
    return None if dep is None else dep["spec"].get("replicas")


async def test_applied_deployment_matches_the_builder(env):
    kube, controller = env
    dep = await eventually(lambda: kube.get(DEPLOYMENT, DEP, NS), what="deployment")
    runtime = await kube.get(SERVING_RUNTIME, "mlserver-1.x", NS)
    expected = build_deployment(runtime_ref(runtime), NS, controller.ctx.config, dep["spec"]["replicas"],
                                "model-serving-etcd")
    assert subset(expected, dep) == []
    assert dep["metadata"]["ownerReferences"][0]["uid"] == runtime["metadata"]["uid"]
    assert any(f.get("manager") == "modelmesh-controller" and f.get("operation") == "Apply"
               for f in dep["metadata"]["managedFields"])


async def test_tc_config_and_service(env):
    kube, _ = env
    tc = await eventually(lambda: kube.get(CONFIG_MAP, "tc-config", NS), what="tc-config")
    constraints = json.loads(tc["data"]["type_constraints"])
    assert constraints["rt:mlserver-1.x"] == {"required": ["rt:mlserver-1.x"]}
    assert constraints["mt:sklearn"] == {"required": ["mt:sklearn"]}
    assert constraints["mt:sklearn:0|pv:grpc-v2"] == {"required": ["mt:sklearn:0", "pv:grpc-v2"]}
    assert constraints["_default"] == {"required": ["_no_runtime"]}
    dataplane = json.loads(tc["data"]["dataplane_api_config"])
    assert dataplane["rpcConfigs"]["inference.GRPCInferenceService/ModelInfer"] == {
        "idExtractionPath": [1], "vModelId": True}
    assert dataplane["rpcConfigs"]["tensorflow.serving.PredictionService/Predict"]["idExtractionPath"] == [1, 1]
    svc = await kube.get(SERVICE, "modelmesh-serving", NS)
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["selector"] == {"modelmesh-service": "modelmesh-serving"}
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {("grpc", 8033), ("http", 8008),
                                                                      ("prometheus", 2112)}


@pytest.mark.parametrize("name,patch,needle", [
    ("bad-reserved", {"containers": [{"name": "mm", "image": "x"}]}, "container name 'mm' is reserved"),
    ("bad-probe", {"containers": [{"name": "mlserver", "image": "x", "readinessProbe": {"tcpSocket": {"port": 1}}}]},
     "may not set readinessProbe"),
    ("bad-port", {"containers": [{"name": "mlserver", "image": "x", "ports": [{"containerPort": 8080}]}]},
     "port 8080 is reserved"),
    ("bad-volume", {"volumes": [{"name": "models-dir", "emptyDir": {}}]}, "volume name 'models-dir' is reserved"),
    ("bad-server", {"builtInAdapter": {"serverType": "nope"}}, "serverType 'nope'"),
    ("bad-endpoint", {"grpcEndpoint": "unix:/tmp/x.sock"}, "must be port:<n>"),
])
async def test_invalid_runtime_reports_reason_and_gets_no_deployment(env, name, patch, needle):
    kube, _ = env
    doc = runtime_doc("mlserver-1.x", NS)
    doc["metadata"]["name"] = name
    doc["spec"].update(patch)
    await kube.apply(doc)

    async def condition():
        obj = await kube.get(SERVING_RUNTIME, name, NS)
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        return conds.get("Valid")

    cond = await eventually(condition, what=f"{name} Valid condition")
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec" and needle in cond["message"]
    assert await kube.get(DEPLOYMENT, f"modelmesh-serving-{name}", NS) is None
    await kube.delete(SERVING_RUNTIME, name, NS)


@pytest.mark.parametrize("runtime", ["mlserver-1.x", "triton-2.x", "ovms-1.x", "torchserve-0.x"])
async def test_shipped_runtimes_deploy(env, runtime):
    """Each shipped runtime as the apiserver takes it; ovms-1.x has `cpu: 5`, a YAML number."""
    kube, controller = env
    doc = runtime_doc(runtime, NS)
    doc["metadata"]["name"] = f"shipped-{runtime}"
    await kube.apply(doc)
    dep = await eventually(lambda: kube.get(DEPLOYMENT, f"modelmesh-serving-shipped-{runtime}", NS),
                           what=f"{runtime} deployment")
    obj = await kube.get(SERVING_RUNTIME, f"shipped-{runtime}", NS)
    expected = build_deployment(runtime_ref(obj), NS, controller.ctx.config, dep["spec"]["replicas"],
                                "model-serving-etcd")
    assert subset(expected, dep) == []
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["cpu"] == "5"
    assert all(c["securityContext"]["capabilities"]["drop"] == ["ALL"] for c in pod["containers"])
    await kube.delete(SERVING_RUNTIME, f"shipped-{runtime}", NS)


@pytest.mark.parametrize("name, sidecar, needle", [
    # invalid: a 422 from the apiserver's validation
    ("rejected-rt", {"name": "Side_Car", "image": "busybox"}, "Side_Car"),
    # a number where a string belongs: server-side apply cannot type the patch (a 500 on 1.20)
    ("rejected-type-rt", {"name": "sidecar", "image": "busybox", "env": [{"name": "PORT", "value": 8001}]},
     "expected string"),
])
async def test_rejected_deployment_is_reported_not_retried(env, name, sidecar, needle):
    """A runtime our validation accepts but whose Deployment the apiserver rejects: Valid=False
    with the apiserver's reason, one Warning Event; once the runtime is fixed it is deployed and
    Valid again."""
    kube, _ = env
    doc = runtime_doc("mlserver-1.x", NS)
    doc["metadata"]["name"] = name
    doc["spec"]["containers"].append(sidecar)
    await kube.apply(doc)

    async def valid_condition():
        obj = await kube.get(SERVING_RUNTIME, name, NS)
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}.get("Valid")

    cond = await eventually(valid_condition, what="Valid condition")
    assert cond["status"] == "False" and cond["reason"] == "DeploymentRejected", cond
    assert needle in cond["message"] and f"modelmesh-serving-{name}" in cond["message"]

    async def rejection_events():
        items, _ = await kube.list(EVENT, NS)
        return [e for e in items if e.get("reason") == "DeploymentRejected"
                and e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "ServingRuntime"]

    events = await eventually(rejection_events, what="DeploymentRejected event")
    assert events[0]["type"] == "Warning" and needle in events[0]["message"]

    doc["spec"]["containers"] = doc["spec"]["containers"][:1]
    await kube.apply(doc)
    await eventually(lambda: kube.get(DEPLOYMENT, f"modelmesh-serving-{name}", NS), what="fixed runtime deployed")
    cond = await eventually(lambda: _true(valid_condition()), what="Valid again")
    assert cond["reason"] == "Valid"
    # Reconciles caused by our own status writes did not record the same problem again.
    assert len(await rejection_events()) == 1
    await kube.delete(SERVING_RUNTIME, name, NS)


async def _true(cond_coro):
    cond = await cond_coro
    return cond if cond and cond["status"] == "True" else None


async def test_disable_and_non_multimodel_remove_the_deployment(env):
    kube, _ = env
    doc = runtime_doc("mlserver-1.x", NS)
    doc["metadata"]["name"] = "toggle-rt"
    await kube.apply(doc)
    await eventually(lambda: kube.get(DEPLOYMENT, "modelmesh-serving-toggle-rt", NS), what="deployment")
    doc["spec"]["disabled"] = True
    await kube.apply(doc)

    async def gone():
        return await kube.get(DEPLOYMENT, "modelmesh-serving-toggle-rt", NS) is None

    await eventually(gone, what="deployment of disabled runtime removed")
    doc["spec"]["disabled"] = False
    await kube.apply(doc)
    await eventually(lambda: kube.get(DEPLOYMENT, "modelmesh-serving-toggle-rt", NS), what="deployment back")
    doc["spec"]["multiModel"] = False
    await kube.apply(doc)
    await eventually(gone, what="deployment of non-multiModel runtime removed")
    await kube.delete(SERVING_RUNTIME, "toggle-rt", NS)


async def test_scale_to_zero_timeline(env):
    kube, controller = env
    loop_time = controller._clock
    await eventually(lambda: replicas_is(kube, 0), what="scaled to zero without predictors")
    await kube.apply(predictor("stz-1"))
    await eventually(lambda: replicas_is(kube, 1), what="scaled up for a predictor")

    # Delete the last predictor: replicas stay until the grace period has passed.
    await kube.delete(PREDICTOR, "stz-1", NS)
    deleted_at = loop_time()
    await eventually(lambda: replicas_is(kube, 0), timeout=GRACE_S + 15, what="scaled down after grace",
                     interval=0.1)
    assert loop_time() - deleted_at >= GRACE_S - 0.2, "scaled down before the grace period"

    # Delete + re-create inside the grace period: no scale-down at all.
    await kube.apply(predictor("stz-2"))
    await eventually(lambda: replicas_is(kube, 1), what="scaled up again")
    await kube.delete(PREDICTOR, "stz-2", NS)
    await kube.apply(predictor("stz-3"))
    start = loop_time()
    while loop_time() - start < GRACE_S + 1.5:  # watch past the grace period: never 0
        assert await replicas(kube) == 1, "scaled down although a predictor was re-created within the grace"
        await asyncio.sleep(0.2)  # sampling the replica count over the window, not synchronising
    await kube.delete(PREDICTOR, "stz-3", NS)


async def test_hpa_from_annotations(env):
    kube, _ = env
    hpa_kind_ = hpa_kind("v2beta2")
    doc = runtime_doc("mlserver-1.x", NS)
    doc["metadata"]["name"] = "hpa-rt"
    doc["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": "hpa", "serving.kserve.io/min-scale": "2",
                                      "serving.kserve.io/max-scale": "4", "serving.kserve.io/metrics": "memory",
                                      "serving.kserve.io/targetUtilizationPercentage": "70"}
    doc["spec"]["supportedModelFormats"] = [{"name": "hpa-fmt", "autoSelect": True}]
    await kube.apply(doc)
    await kube.apply(predictor("hpa-pred", model_type="hpa-fmt"))
    hpa = await eventually(lambda: kube.get(hpa_kind_, "modelmesh-serving-hpa-rt", NS), what="HPA")
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 4)
    assert spec["metrics"][0]["resource"] == {"name": "memory", "target": {"type": "Utilization",
                                                                           "averageUtilization": 70}}
    assert spec["scaleTargetRef"]["name"] == "modelmesh-serving-hpa-rt"

    doc["metadata"]["annotations"]["serving.kserve.io/max-scale"] = "6"
    await kube.apply(doc)

    async def max_is_6():
        h = await kube.get(hpa_kind_, "modelmesh-serving-hpa-rt", NS)
        return h and h["spec"]["maxReplicas"] == 6

    await eventually(max_is_6, what="HPA updated")
    del doc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"]
    await kube.apply(doc)

    async def hpa_gone():
        return await kube.get(hpa_kind_, "modelmesh-serving-hpa-rt", NS) is None

    await eventually(hpa_gone, what="HPA deleted")
    await kube.delete(PREDICTOR, "hpa-pred", NS)
    await kube.delete(SERVING_RUNTIME, "hpa-rt", NS)


async def test_config_live_reload_and_invalid_value(env, mesh_endpoint):
    kube, controller = env
    await kube.apply(predictor("cfg-pred"))
    await eventually(lambda: replicas_is(kube, 1), what="runtime in use")
    await kube.apply(config_map(NS, {**CONFIG, "modelMeshEndpoint": mesh_endpoint, "podsPerRuntime": 3}))
    await eventually(lambda: replicas_is(kube, 3), what="podsPerRuntime change applied")

    # An invalid value: reported (Event + metric), not applied.
    await kube.apply(config_map(NS, {**CONFIG, "modelMeshEndpoint": mesh_endpoint, "podsPerRuntime": "many"}))

    async def warning_event():
        events, _ = await kube.list(EVENT, NS)
        return [e for e in events if e.get("reason") == "InvalidConfig"
                and e["involvedObject"]["name"] == "model-serving-config"]

    events = await eventually(warning_event, what="InvalidConfig event")
    assert "podsPerRuntime" in events[0]["message"]
    assert controller.ctx.config_error and controller.ctx.config.pods_per_runtime == 3
    assert await replicas(kube) == 3
    assert controller._config_valid._value.get() == 0

    # Deleting the ConfigMap reverts to the defaults (podsPerRuntime 2).
    await kube.delete(CONFIG_MAP, "model-serving-config", NS)
    await eventually(lambda: replicas_is(kube, 2), what="defaults after ConfigMap deletion")
    assert controller.ctx.config_error is None
    await kube.apply(config_map(NS, {**CONFIG, "modelMeshEndpoint": mesh_endpoint}))
    await kube.delete(PREDICTOR, "cfg-pred", NS)
    assert ControllerConfig.defaults().pods_per_runtime == 2
