"""Predictor and InferenceService scenarios (acceptance.md) that need no running pod, against
the real kube-apiserver, with the status sequence each CR goes through asserted.

The mesh side is the STAND-IN servicer (standin_mesh.py) behind the `mesh_endpoint` fixture.
"""

from __future__ import annotations

import json

import pytest
from controller_helpers import StatusHistory, eventually, isvc_state, predictor_state, runtime_doc, start_controller

from modelmesh.controller.kube import DEPLOYMENT, INFERENCE_SERVICE, PREDICTOR, SERVING_RUNTIME
from modelmesh.controller.reconcilers.model import FINALIZER

NS = "models-ns"
LOADED = ("Loaded", "", "UpToDate", True)
PENDING = ("Pending", "", "UpToDate", False)
LOADING = ("Loading", "", "UpToDate", True)


@pytest.fixture(scope="module")
async def env(kube, mesh_endpoint, mesh_standin):
    controller = await start_controller(kube, NS, {
        "modelMeshEndpoint": mesh_endpoint, "podsPerRuntime": 1, "scaleToZero": {"gracePeriodSeconds": 1}})
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    single = runtime_doc("mlserver-1.x", NS)
    single["metadata"]["name"] = "single-model-rt"
    single["spec"]["multiModel"] = False
    single["spec"]["supportedModelFormats"] = [{"name": "special-fmt", "autoSelect": True}]
    await kube.apply(single)
    preds = await StatusHistory(kube, PREDICTOR, NS, predictor_state).start()
    isvcs = await StatusHistory(kube, INFERENCE_SERVICE, NS, isvc_state).start()
    yield kube, mesh_standin, preds, isvcs
    await preds.stop()
    await isvcs.stop()
    await controller.stop()


def predictor(name, path="sklearn/iris", model_type="sklearn", runtime=None, storage=True):
    spec = {"modelType": {"name": model_type}}
    if storage:
        spec["storage"] = {"path": path, "key": "localMinIO", "parameters": {"bucket": "models"}}
    if runtime:
        spec["runtime"] = {"name": runtime}
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


async def loaded_via_standin(mesh, preds, name):
    """Wait until the controller registered `name` and shows Loading, then let the load finish."""
    await preds.reaches(name, LOADING)
    mesh.complete(mesh.target_of(name))
    return await preds.reaches(name, LOADED)


async def test_create_load_update_and_failed_update(env):
    kube, mesh, preds, _ = env
    await kube.apply(predictor("p-update"))
    obj = await loaded_via_standin(mesh, preds, "p-update")
    assert preds.of("p-update") == [PENDING, LOADING, LOADED]
    assert obj["status"]["grpcEndpoint"] == f"grpc://modelmesh-serving.{NS}:8033"
    assert obj["status"]["httpEndpoint"] == f"http://modelmesh-serving.{NS}:8008"
    assert obj["status"]["totalCopies"] == 1 and FINALIZER in obj["metadata"]["finalizers"]
    req = mesh.set_calls("p-update")[0]
    assert req.owner == "ksp" and req.autoDeleteTargetModel and req.loadNow
    assert req.targetModelId.startswith("p-update__ksp-") and len(req.targetModelId.split("-")[-1]) == 10
    assert req.modelInfo.type == "mt:sklearn" and req.modelInfo.path == "sklearn/iris"
    assert json.loads(req.modelInfo.key) == {"storage_key": "localMinIO", "storage_params": {"bucket": "models"},
                                             "model_type": {"name": "sklearn"}}
    first_id = req.targetModelId

    # Update the path: the vmodel transitions to a new concrete model.
    await kube.apply(predictor("p-update", path="sklearn/iris-v2"))
    await preds.reaches("p-update", ("Loaded", "Loading", "InProgress", True))
    second_id = mesh.target_of("p-update")
    assert second_id != first_id and second_id.startswith("p-update__ksp-")
    mesh.complete(second_id)
    await preds.reaches("p-update", LOADED)

    # Update to a path that fails to load: the old model keeps serving.
    await kube.apply(predictor("p-update", path="sklearn/missing"))
    await preds.reaches("p-update", ("Loaded", "Loading", "InProgress", True))
    mesh.fail(mesh.target_of("p-update"), "model file not found in bucket models", location="pod-7")
    obj = await preds.reaches("p-update", ("Loaded", "FailedToLoad", "BlockedByFailedLoad", True))
    failure = obj["status"]["lastFailureInfo"]
    assert failure["reason"] == "ModelLoadFailed" and failure["message"] == "model file not found in bucket models"
    assert failure["location"] == "pod-7" and failure["time"] and failure["modelId"] == mesh.target_of("p-update")
    assert preds.of("p-update") == [
        PENDING, LOADING, LOADED, ("Loaded", "Loading", "InProgress", True), LOADED,
        ("Loaded", "Loading", "InProgress", True), ("Loaded", "FailedToLoad", "BlockedByFailedLoad", True)]


async def test_create_with_invalid_path_fails(env):
    kube, mesh, preds, _ = env
    await kube.apply(predictor("p-badpath", path="no/such/model"))
    await preds.reaches("p-badpath", LOADING)
    mesh.fail(mesh.target_of("p-badpath"), "NoSuchKey: no/such/model")
    obj = await preds.reaches("p-badpath", ("FailedToLoad", "", "UpToDate", False))
    assert obj["status"]["lastFailureInfo"]["reason"] == "ModelLoadFailed"
    assert obj["status"]["failedCopies"] == 1
    assert preds.of("p-badpath") == [PENDING, LOADING, ("FailedToLoad", "", "UpToDate", False)]


@pytest.mark.parametrize("name,doc,reason,message", [
    ("p-nostorage", predictor("p-nostorage", storage=False), "ModelLoadFailed", "Predictor Storage field missing"),
    ("p-badtype", predictor("p-badtype", model_type="tensorflow"), "NoSupportingRuntime",
     "No ServingRuntime supports specified model type and/or protocol"),
    ("p-badruntime", predictor("p-badruntime", runtime="no-such-runtime"), "RuntimeNotRecognized",
     "Specified runtime name not recognized"),
])
async def test_invalid_predictors_get_reason_and_message(env, name, doc, reason, message):
    kube, mesh, preds, _ = env
    await kube.apply(doc)
    obj = await eventually(lambda: (o := preds.latest.get(name)) and (o.get("status") or {}).get(
        "lastFailureInfo") and o, what=f"{name} failure")
    status = obj["status"]
    assert (status["activeModelState"], status["available"]) == ("FailedToLoad", False)
    assert (status["lastFailureInfo"]["reason"], status["lastFailureInfo"]["message"]) == (reason, message)
    if reason == "ModelLoadFailed":
        assert status["transitionStatus"] == "InvalidSpec"
    assert not mesh.set_calls(name), "nothing no runtime can serve is registered in the mesh"


async def test_runtime_without_ready_pod_means_waiting(env):
    kube, mesh, preds, _ = env
    mesh.no_instance_types.add("mt:lightgbm")
    await kube.apply(predictor("p-waiting", model_type="lightgbm"))
    obj = await preds.reaches("p-waiting", ("Loading", "", "UpToDate", False))
    assert obj["status"]["lastFailureInfo"]["reason"] == "RuntimeUnhealthy"
    assert obj["status"]["lastFailureInfo"]["message"] == "Waiting for supporting runtime Pod to become available"


async def test_non_multimodel_runtime_gets_no_deployment_and_predictor_stays_pending(env):
    kube, mesh, preds, _ = env
    await kube.apply(predictor("p-single", model_type="special-fmt", runtime="single-model-rt"))
    await preds.reaches("p-single", PENDING)
    await eventually(lambda: kube.get(DEPLOYMENT, "modelmesh-serving-mlserver-1.x", NS), what="mlserver deployment")
    assert await kube.get(DEPLOYMENT, "modelmesh-serving-single-model-rt", NS) is None
    # Still Pending after the controller has had every chance to act on it.
    await eventually(lambda: kube.get(SERVING_RUNTIME, "single-model-rt", NS))
    assert preds.of("p-single") == [PENDING] and not mesh.set_calls("p-single")


def isvc(name, predictor_section, annotations=None):
    ann = {"serving.kserve.io/deploymentMode": "ModelMesh", **(annotations or {})}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS, "annotations": ann},
            "spec": {"predictor": predictor_section}}


@pytest.mark.parametrize("name,section,annotations,label", [
    ("isvc-new", {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/sklearn/iris"}},
     None, "mt:sklearn"),
    ("isvc-old", {"sklearn": {"storageUri": "s3://models/sklearn/iris"}},
     {"serving.kserve.io/servingRuntime": "mlserver-1.x", "serving.kserve.io/secretKey": "localMinIO"},
     "rt:mlserver-1.x"),
])
async def test_inference_services_load(env, name, section, annotations, label):
    kube, mesh, _, isvcs = env
    await kube.apply(isvc(name, section, annotations))
    await isvcs.reaches(name, ("Loading", "", "UpToDate", True))
    mesh.complete(mesh.target_of(name))
    obj = await isvcs.reaches(name, ("Loaded", "", "UpToDate", True))
    assert isvcs.of(name) == [("Pending", "", "UpToDate", False), ("Loading", "", "UpToDate", True),
                              ("Loaded", "", "UpToDate", True)]
    status = obj["status"]
    assert status["url"] == f"grpc://modelmesh-serving.{NS}:8033"
    assert status["components"]["predictor"]["restUrl"] == f"http://modelmesh-serving.{NS}:8008"
    assert {c["type"] for c in status["conditions"]} == {"PredictorReady", "Ready"}
    req = mesh.set_calls(name)[0]
    assert req.owner == "isvc" and req.modelInfo.type == label and req.modelInfo.path == "sklearn/iris"
    assert json.loads(req.modelInfo.key)["storage_params"] == {"type": "s3", "bucket": "models"}


async def test_invalid_isvc_and_non_modelmesh_isvc(env):
    kube, mesh, _, isvcs = env
    await kube.apply(isvc("isvc-both", {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/p",
                                                   "storage": {"path": "p"}}}))
    obj = await eventually(lambda: (o := isvcs.latest.get("isvc-both")) and isvc_state(o) and o)
    ms = obj["status"]["modelStatus"]
    assert ms["transitionStatus"] == "InvalidSpec" and ms["lastFailureInfo"]["reason"] == "InvalidPredictorSpec"
    assert "only one of" in ms["lastFailureInfo"]["message"]
    serverless = isvc("isvc-serverless", {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/p"}})
    serverless["metadata"]["annotations"] = {}
    await kube.apply(serverless)
    await kube.apply(predictor("p-marker"))  # processed after the serverless one was seen
    await eventually(lambda: mesh.set_calls("p-marker"))
    assert not mesh.set_calls("isvc-serverless")
    assert not (isvcs.latest["isvc-serverless"].get("status") or {}).get("modelStatus")


async def test_delete_removes_the_vmodel(env):
    kube, mesh, preds, _ = env
    await kube.apply(predictor("p-delete"))
    await loaded_via_standin(mesh, preds, "p-delete")
    assert "p-delete" in mesh.vmodels
    await kube.delete(PREDICTOR, "p-delete", NS)
    await eventually(lambda: "p-delete" not in mesh.vmodels, what="vmodel deleted")
    assert [(r.vModelId, r.owner) for r in mesh.delete_calls() if r.vModelId == "p-delete"] == [("p-delete", "ksp")]
    async def gone():
        return await kube.get(PREDICTOR, "p-delete", NS) is None

    await eventually(gone, what="predictor gone (finalizer removed)")
