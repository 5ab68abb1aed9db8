"""One mesh instance in front of one runtime: register, infer, status, errors."""

import grpc
import pytest

from modelmesh.protos import model_mesh_pb2 as pb

from harness.mesh_client import infer_request, model_info

ST = pb.ModelStatusInfo


async def test_register_infer_and_status(etcd, nodes, client_for):
    node = nodes(etcd, "solo-a")
    c = client_for(node)
    status = await c.mesh.registerModel(pb.RegisterModelRequest(modelId="m1", modelInfo=model_info()))
    assert status.status == ST.NOT_LOADED
    resp = await c.infer("m1")
    # The runtime saw the concrete id injected in field 1 and in the mm-model-id header.
    assert resp.model_name == "m1"
    assert resp.parameters["mm-model-id"].string_param == "m1"
    assert resp.parameters["runtime"].string_param == "solo-a"
    status = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="m1"))
    assert status.status == ST.LOADED
    assert [ci.location for ci in status.modelCopyInfos] == ["loc-solo-a"]
    assert (await node.runtime.loaded())["loaded"] == {"m1": 1_000_000}


async def test_unknown_model_and_missing_id(etcd, nodes, client_for):
    node = nodes(etcd, "solo-b")
    c = client_for(node)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.infer("nope")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.v2.ModelInfer(infer_request(), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
