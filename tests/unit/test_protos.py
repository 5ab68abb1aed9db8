"""The generated stubs are current and the wire contract (names, field numbers) holds."""

import subprocess
import sys
from pathlib import Path

import pytest

from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as mm
from modelmesh.protos import model_runtime_pb2 as rt

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_are_not_stale():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _numbers(message) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


@pytest.mark.parametrize("message, expected", [
    (mm.RegisterModelRequest, {"modelId": 1, "modelInfo": 2, "loadNow": 3, "sync": 4, "lastUsedTime": 5}),
    (mm.ModelInfo, {"type": 1, "path": 2, "key": 3}),
    (mm.ModelStatusInfo, {"status": 1, "errors": 2, "modelCopyInfos": 3}),
    (mm.ModelStatusInfo.ModelCopyInfo, {"location": 1, "copyStatus": 2, "time": 3}),
    (mm.EnsureLoadedRequest, {"modelId": 1, "lastUsedTime": 2, "sync": 4}),
    (mm.SetVModelRequest, {"vModelId": 1, "targetModelId": 2, "updateOnly": 3, "modelInfo": 4,
                           "autoDeleteTargetModel": 5, "loadNow": 6, "force": 7, "sync": 8,
                           "expectedTargetModelId": 9, "owner": 10}),
    (mm.VModelStatusInfo, {"status": 1, "activeModelId": 2, "targetModelId": 3, "activeModelStatus": 4,
                           "targetModelStatus": 5, "owner": 6}),
    (mm.DeleteVModelRequest, {"vModelId": 1, "owner": 2}),
    (mm.GetVModelStatusRequest, {"vModelId": 1, "owner": 2}),
    (rt.LoadModelRequest, {"modelId": 1, "modelType": 2, "modelPath": 3, "modelKey": 4}),
    (rt.LoadModelResponse, {"sizeInBytes": 1, "maxConcurrency": 2}),
    (rt.RuntimeStatusResponse, {"status": 1, "capacityInBytes": 2, "maxLoadingConcurrency": 3,
                                "modelLoadingTimeoutMs": 4, "defaultModelSizeInBytes": 5, "runtimeVersion": 6,
                                "numericRuntimeVersion": 7, "methodInfos": 8, "limitModelConcurrency": 9,
                                "allowAnyMethod": 10}),
    (v2.ModelInferRequest, {"model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5,
                            "outputs": 6, "raw_input_contents": 7}),
    (v2.ModelInferResponse, {"model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "outputs": 5,
                             "raw_output_contents": 6}),
    (v2.InferParameter, {"bool_param": 1, "int64_param": 2, "string_param": 3, "double_param": 4,
                         "uint64_param": 5}),
    (v2.InferTensorContents, {"bool_contents": 1, "int_contents": 2, "int64_contents": 3, "uint_contents": 4,
                              "uint64_contents": 5, "fp32_contents": 6, "fp64_contents": 7, "bytes_contents": 8}),
    (v2.ModelRepositoryParameter, {"bool_param": 1, "int64_param": 2, "string_param": 3, "bytes_param": 4}),
    (v2.RepositoryModelLoadRequest, {"repository_name": 1, "model_name": 2, "parameters": 3}),
])
def test_field_numbers_match_contract(message, expected):
    assert _numbers(message) == expected


def test_enums_and_services():
    assert dict(mm.ModelStatusInfo.ModelStatus.items()) == {
        "NOT_FOUND": 0, "NOT_LOADED": 1, "LOADING": 2, "LOADED": 3, "LOADING_FAILED": 4, "UNKNOWN": 5}
    assert dict(mm.VModelStatusInfo.VModelStatus.items()) == {
        "NOT_FOUND": 0, "DEFINED": 1, "TRANSITIONING": 2, "TRANSITION_FAILED": 3, "UNKNOWN": 5}
    assert dict(rt.RuntimeStatusResponse.Status.items()) == {"STARTING": 0, "READY": 1, "FAILING": 2}
    services = {
        "mmesh.ModelMesh": mm.DESCRIPTOR.services_by_name["ModelMesh"],
        "mmesh.ModelRuntime": rt.DESCRIPTOR.services_by_name["ModelRuntime"],
        "inference.GRPCInferenceService": v2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
    }
    assert {k: s.full_name for k, s in services.items()} == {k: k for k in services}
    assert [m.name for m in services["mmesh.ModelMesh"].methods] == [
        "registerModel", "unregisterModel", "getModelStatus", "ensureLoaded", "setVModel", "deleteVModel",
        "getVModelStatus"]
    assert [m.name for m in services["mmesh.ModelRuntime"].methods] == [
        "loadModel", "unloadModel", "predictModelSize", "modelSize", "runtimeStatus"]
    assert {m.name for m in services["inference.GRPCInferenceService"].methods} == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"}


def test_wire_bytes_are_the_reference_encoding():
    # Field 1 (model_name) as a length-delimited string: tag 0x0a; clients and the mesh's
    # id extraction depend on this exact layout.
    assert v2.ModelInferRequest(model_name="m").SerializeToString() == b"\x0a\x01m"
    assert mm.SetVModelRequest(owner="o").SerializeToString() == b"\x52\x01o"  # field 10
