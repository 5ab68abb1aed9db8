"""Controller + a REAL mesh instance (`modelmesh runtime` as a process, in front of the mesh
test runtime), wired from what the controller generated: the mm container's env of the
runtime Deployment (MM_LABELS, service name, KV prefix, owner) and tc-config (type
constraints, data-plane config). Statuses follow the real mesh's vmodel records through the
etcd table watch; inference by ISVC name routes through the data-plane config.

(The full end-to-end with MLServer, the adapter and S3 is the lead's test.)"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from controller_helpers import StatusHistory, ensure_namespace, eventually, predictor_state, runtime_doc, start_controller
from harness.mesh import MeshNode
from harness.mesh_client import Client, infer_request

from modelmesh.apps.controller import open_mesh_store
from modelmesh.controller.kube import CONFIG_MAP, DEPLOYMENT, PREDICTOR
from modelmesh.protos import model_mesh_pb2 as mm

NS = "realmesh-ns"
LOADED = ("Loaded", "", "UpToDate", True)


@pytest.fixture(scope="module")
async def env(kube, etcd, tmp_path_factory):
    await ensure_namespace(kube, NS)
    workdir = tmp_path_factory.mktemp("realmesh")
    conn = {"endpoints": etcd.endpoint, "root_prefix": "realmesh"}
    (workdir / "etcd_connection").write_text(json.dumps(conn))  # the mounted secret
    await kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "model-serving-etcd",
                                                                         "namespace": NS},
                      "data": {"etcd_connection": base64.b64encode(json.dumps(conn).encode()).decode()}})
    node = MeshNode(workdir, "pod-a", etcd.endpoint, capacity=50_000_000)
    controller = await start_controller(kube, NS, {"modelMeshEndpoint": node.mesh.target},
                                        kv_opener=open_mesh_store)
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    dep = await eventually(lambda: kube.get(DEPLOYMENT, "modelmesh-serving-mlserver-1.x", NS), what="deployment")
    tc = await eventually(lambda: kube.get(CONFIG_MAP, "tc-config", NS), what="tc-config")
    mm_container = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "mm")
    mm_env = {e["name"]: e["value"] for e in mm_container["env"] if "value" in e}
    node.mesh.env.update({
        "KV_STORE": f"etcd:{workdir / 'etcd_connection'}",
        **{k: mm_env[k] for k in ("MM_SERVICE_NAME", "MM_LABELS", "MM_KVSTORE_PREFIX", "MM_DEFAULT_VMODEL_OWNER")},
        "MM_TYPE_CONSTRAINTS": tc["data"]["type_constraints"],
        "MM_DATAPLANE_CONFIG": tc["data"]["dataplane_api_config"],
    })
    await asyncio.to_thread(node.start)
    preds = await StatusHistory(kube, PREDICTOR, NS, predictor_state).start()
    client = Client(node.mesh.target)
    yield kube, controller, preds, client
    await client.close()
    await preds.stop()
    await controller.stop()
    await asyncio.to_thread(node.stop)


def predictor(name, path="models/a", model_type="sklearn"):
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"modelType": {"name": model_type}, "storage": {"path": path}}}


async def test_load_update_infer_delete(env):
    kube, controller, preds, client = env
    await kube.apply(predictor("rm-pred"))
    await preds.reaches("rm-pred", LOADED, timeout=30)
    seq = preds.of("rm-pred")
    assert seq[0] == ("Pending", "", "UpToDate", False) and seq[-1] == LOADED
    # The mesh may report the model NOT_LOADED (Standby) for a moment before its load starts.
    assert set(seq) <= {("Pending", "", "UpToDate", False), ("Standby", "", "UpToDate", True),
                        ("Loading", "", "UpToDate", True), LOADED}
    status = await client.mesh.getVModelStatus(mm.GetVModelStatusRequest(vModelId="rm-pred", owner="ksp"))
    first = status.activeModelId
    assert first.startswith("rm-pred__ksp-") and status.status == mm.VModelStatusInfo.DEFINED

    # Inference by name: the mesh extracts the vmodel id per the controller's data-plane config.
    req = infer_request()
    req.model_name = "rm-pred"
    resp = await client.v2.ModelInfer(req, timeout=30)
    assert resp.parameters["mm-model-id"].string_param == first

    await kube.apply(predictor("rm-pred", path="models/b"))

    async def moved():
        s = await client.mesh.getVModelStatus(mm.GetVModelStatusRequest(vModelId="rm-pred", owner="ksp"))
        return s.activeModelId != first and s.status == mm.VModelStatusInfo.DEFINED and s

    second = (await eventually(moved, timeout=30, what="vmodel moved to the new model")).activeModelId
    await preds.reaches("rm-pred", LOADED, timeout=30)
    assert preds.latest["rm-pred"]["status"]["totalCopies"] == 1
    req.model_name = "rm-pred"
    assert (await client.v2.ModelInfer(req, timeout=30)).parameters["mm-model-id"].string_param == second

    await kube.delete(PREDICTOR, "rm-pred", NS)

    async def vmodel_gone():
        s = await client.mesh.getVModelStatus(mm.GetVModelStatusRequest(vModelId="rm-pred", owner="ksp"))
        return s.status == mm.VModelStatusInfo.NOT_FOUND

    await eventually(vmodel_gone, timeout=30, what="vmodel deleted in the real mesh")


async def test_runtime_without_instances_is_waiting(env):
    kube, _, preds, _ = env
    other = runtime_doc("mlserver-1.x", NS)
    other["metadata"]["name"] = "other-rt"
    other["spec"]["supportedModelFormats"] = [{"name": "other-fmt", "autoSelect": True}]
    await kube.apply(other)  # known to Kubernetes, but no mesh instance carries its labels
    await kube.apply(predictor("rm-waiting", model_type="other-fmt"))
    obj = await preds.reaches("rm-waiting", ("Loading", "", "UpToDate", False), timeout=30)
    assert obj["status"]["lastFailureInfo"]["reason"] == "RuntimeUnhealthy"
    await kube.apply(predictor("rm-notype", model_type="no-such-format"))
    obj = await preds.reaches("rm-notype", ("FailedToLoad", "", "UpToDate", False), timeout=30)
    assert obj["status"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
