"""End to end: the controller on a real kube-apiserver, a runtime pod run as local
processes wired from the Deployment the controller generated (real MLServer, the built-in
adapter, the mesh; plus the REST proxy), models in a real S3 server. An InferenceService
goes Pending -> Loading -> Loaded and answers inference over gRPC and REST; an update
transitions; a bad update is BlockedByFailedLoad while the old model keeps serving."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import urllib.request

import pytest
from controller_helpers import StatusHistory, ensure_namespace, eventually, isvc_state, runtime_doc, start_controller
from harness.models import IRIS_SAMPLES, iris_request
from harness.models import iris_classes as classes
from harness.pod import RuntimePod
from harness.process import ManagedProcess, free_port, port_open
from harness.s3_models import STORAGE_KEY

from modelmesh.apps.controller import open_mesh_store
from modelmesh.controller.kube import CONFIG_MAP, DEPLOYMENT, INFERENCE_SERVICE
from modelmesh.protos import model_mesh_pb2 as mm
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub

NS = "e2e-ns"
LOADED = ("Loaded", "", "UpToDate", True)


def isvc(name: str, path: str) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS,
                         "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storage": {"key": STORAGE_KEY, "path": path}}}}}


def rest_infer(port: int, name: str) -> tuple[int, dict]:
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(IRIS_SAMPLES), 4], "datatype": "FP64",
                                   "data": [x for x, _ in IRIS_SAMPLES]}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{name}/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
async def e2e(kube, etcd, s3_models, storage_config_dir, tmp_path_factory):
    await ensure_namespace(kube, NS)
    workdir = tmp_path_factory.mktemp("e2e")
    conn = {"endpoints": etcd.endpoint, "root_prefix": "e2e"}
    (workdir / "etcd_connection").write_text(json.dumps(conn))  # the mounted secret
    await kube.apply({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": "model-serving-etcd", "namespace": NS},
                      "data": {"etcd_connection": base64.b64encode(json.dumps(conn).encode()).decode()}})
    pod = RuntimePod(workdir, "mlserver-pod", "mlserver", etcd.endpoint, storage_config_dir)
    controller = await start_controller(kube, NS, {"modelMeshEndpoint": pod.mesh.target}, kv_opener=open_mesh_store)
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    dep = await eventually(lambda: kube.get(DEPLOYMENT, "modelmesh-serving-mlserver-1.x", NS), what="deployment")
    tc = await eventually(lambda: kube.get(CONFIG_MAP, "tc-config", NS), what="tc-config")
    containers = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
    mm_env = {e["name"]: e["value"] for e in containers["mm"]["env"] if "value" in e}
    adapter_env = {e["name"]: e["value"] for e in containers["mlserver-adapter"]["env"] if "value" in e}
    # The pod's containers as processes: the generated env, with ports and paths made local.
    pod.mesh.env.update({
        "KV_STORE": f"etcd:{workdir / 'etcd_connection'}",
        **{k: mm_env[k] for k in ("MM_SERVICE_NAME", "MM_LABELS", "MM_KVSTORE_PREFIX", "MM_DEFAULT_VMODEL_OWNER")},
        "MM_TYPE_CONSTRAINTS": tc["data"]["type_constraints"],
        "MM_DATAPLANE_CONFIG": tc["data"]["dataplane_api_config"],
    })
    pod.adapter_env.update({k: adapter_env[k] for k in ("MEM_BUFFER_BYTES", "LOADTIME_TIMEOUT") if k in adapter_env})
    await asyncio.to_thread(pod.start)
    rest_port = free_port()
    rest = ManagedProcess("rest-proxy", [sys.executable, "-m", "modelmesh.cli", "runtime", "rest-proxy"],
                          workdir / "rest-proxy.log",
                          env={**os.environ, "REST_PROXY_LISTEN_PORT": str(rest_port),
                               "REST_PROXY_GRPC_PORT": str(pod.mesh.grpc_port)})
    await asyncio.to_thread(rest.start, lambda: port_open(rest_port), 60)
    history = await StatusHistory(kube, INFERENCE_SERVICE, NS, isvc_state).start()
    yield kube, pod, history, rest_port
    await history.stop()
    await asyncio.to_thread(rest.stop)
    await controller.stop()
    await asyncio.to_thread(pod.stop)


async def test_inference_service_lifecycle(e2e, s3_models):
    kube, pod, history, rest_port = e2e
    await kube.apply(isvc("iris", s3_models["iris"]))
    obj = await history.reaches("iris", LOADED, timeout=120)
    seq = history.of("iris")
    assert seq[0][0] in ("Pending", "Loading") and seq[-1] == LOADED
    assert all(s[0] in ("Pending", "Loading", "Loaded") for s in seq), seq
    assert obj["status"]["modelStatus"]["copies"]["totalCopies"] == 1

    # gRPC with model_name = the InferenceService name, as any V2 client sends it.
    import grpc
    async with grpc.aio.insecure_channel(pod.mesh.target) as ch:
        stub = GRPCInferenceServiceStub(ch)
        assert classes(await stub.ModelInfer(iris_request("iris"), timeout=60)) == [c for _, c in IRIS_SAMPLES]
        # REST through the proxy.
        status, body = await asyncio.to_thread(rest_infer, rest_port, "iris")
        assert status == 200, body
        assert body["outputs"][0]["data"] == [c for _, c in IRIS_SAMPLES]

        # Update the storage path: transition, inference keeps working, ends up to date.
        mesh = ModelMeshStub(ch)
        first = (await mesh.getVModelStatus(mm.GetVModelStatusRequest(vModelId="iris", owner="isvc"))).activeModelId
        await kube.apply(isvc("iris", s3_models["iris-file"]))

        async def moved():
            st = await mesh.getVModelStatus(mm.GetVModelStatusRequest(vModelId="iris", owner="isvc"))
            assert classes(await stub.ModelInfer(iris_request("iris"), timeout=60)) == [c for _, c in IRIS_SAMPLES]
            return st.activeModelId != first and st.status == mm.VModelStatusInfo.DEFINED

        await eventually(moved, timeout=120, what="transition to the updated model")
        await history.reaches("iris", LOADED, timeout=120)

        # An update to a corrupt model: blocked, still available, old model still serving.
        await kube.apply(isvc("iris", s3_models["corrupt"]))
        obj = await history.reaches("iris", ("Loaded", "FailedToLoad", "BlockedByFailedLoad", True), timeout=120)
        failure = obj["status"]["modelStatus"]["lastFailureInfo"]
        assert failure["reason"] == "ModelLoadFailed" and failure["message"]
        assert classes(await stub.ModelInfer(iris_request("iris"), timeout=60)) == [c for _, c in IRIS_SAMPLES]

    # Deleting the InferenceService removes its vmodel: the name no longer routes.
    await kube.delete(INFERENCE_SERVICE, "iris", NS)

    async def gone():
        status, _ = await asyncio.to_thread(rest_infer, rest_port, "iris")
        return status == 404

    await eventually(gone, timeout=60, what="vmodel deleted")
