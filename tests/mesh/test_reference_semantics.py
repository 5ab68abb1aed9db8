"""API details read from the reference source (mesh.md, "Details read from the reference
source"): empty ids, one kind of id per request, vmodel owners, the data-plane config's
allowOtherRpcs default."""

import json

import grpc
import pytest

from harness.mesh_client import infer_request, model_info
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb

VS = pb.VModelStatusInfo


async def _code_of(coro) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await coro
    return e.value.code(), e.value.details()


async def test_empty_model_id_and_both_id_kinds_are_invalid(etcd, nodes, client_for):
    node = nodes(etcd, "ref-ids")
    c = client_for(node)
    for call in (c.mesh.getModelStatus(pb.GetStatusRequest(modelId="")),
                 c.mesh.ensureLoaded(pb.EnsureLoadedRequest(modelId="")),
                 c.mesh.unregisterModel(pb.UnregisterModelRequest(modelId="")),
                 c.mesh.registerModel(pb.RegisterModelRequest(modelId="", modelInfo=model_info()))):
        code, details = await _code_of(call)
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "must provide non-empty modelId")
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="both-m", modelInfo=model_info()))
    await c.mesh.setVModel(pb.SetVModelRequest(vModelId="both-v", targetModelId="both-m"))
    assert (await c.infer("both-v", vmodel=True)).model_name == "both-m"  # each alone works
    code, details = await _code_of(c.v2.ModelInfer(
        infer_request(), metadata=[("mm-model-id", "both-m"), ("mm-vmodel-id", "both-v")], timeout=30))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "must include only one of model id and vmodel id")


async def test_an_empty_owner_means_no_owner_check(etcd, nodes, client_for):
    node = nodes(etcd, "ref-owner")
    c = client_for(node)
    st = await c.mesh.setVModel(pb.SetVModelRequest(vModelId="ov", targetModelId="ov-1", owner="o1",
                                                    modelInfo=model_info()))
    assert st.owner == "o1"
    # No owner: no check; the vmodel keeps its owner.
    st = await c.mesh.setVModel(pb.SetVModelRequest(vModelId="ov", targetModelId="ov-2", modelInfo=model_info(),
                                                    force=True))
    assert (st.owner, st.activeModelId) == ("o1", "ov-2")
    assert (await c.mesh.getVModelStatus(pb.GetVModelStatusRequest(vModelId="ov"))).status == VS.DEFINED
    # Another owner: ALREADY_EXISTS naming the owner; invisible; delete is a silent no-op.
    code, details = await _code_of(c.mesh.setVModel(pb.SetVModelRequest(
        vModelId="ov", targetModelId="ov-3", owner="o2", modelInfo=model_info())))
    assert code == grpc.StatusCode.ALREADY_EXISTS and '"o1"' in details
    assert (await c.mesh.getVModelStatus(pb.GetVModelStatusRequest(vModelId="ov", owner="o2"))).status == VS.NOT_FOUND
    await c.mesh.deleteVModel(pb.DeleteVModelRequest(vModelId="ov", owner="o2"))
    assert (await c.mesh.getVModelStatus(pb.GetVModelStatusRequest(vModelId="ov", owner="o1"))).status == VS.DEFINED
    await c.mesh.deleteVModel(pb.DeleteVModelRequest(vModelId="ov"))  # no owner: deletes
    assert (await c.mesh.getVModelStatus(pb.GetVModelStatusRequest(vModelId="ov"))).status == VS.NOT_FOUND


async def test_a_dataplane_config_refuses_unlisted_rpcs_by_default(etcd, nodes, client_for):
    # No allowOtherRpcs key: false, as in the reference, even for a method the runtime lists.
    config = json.dumps({"rpcConfigs": {"inference.GRPCInferenceService/ModelInfer": {"idExtractionPath": [1]}}})
    node = nodes(etcd, "ref-dataplane", mesh_env={"MM_DATAPLANE_CONFIG": config})
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="dp-m", modelInfo=model_info()))
    req = infer_request()
    req.model_name = "dp-m"
    assert (await c.v2.ModelInfer(req, timeout=30)).model_name == "dp-m"
    code, details = await _code_of(c.v2.ModelMetadata(v2.ModelMetadataRequest(name="dp-m"),
                                                      metadata=[("mm-model-id", "dp-m")], timeout=30))
    assert code == grpc.StatusCode.UNIMPLEMENTED and "data-plane config" in details
