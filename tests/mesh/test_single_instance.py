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


async def test_runtime_on_a_unix_socket(etcd, tmp_path):
    """INTERNAL_GRPC_SOCKET_PATH: the SPI and inference over a unix domain socket (the
    reference's `grpcEndpoint: unix:/path` runtimes)."""
    import os
    import sys

    from harness.mesh import ROOT, MeshProcess
    from harness.mesh_client import Client
    from harness.process import ManagedProcess

    sock = tmp_path / "runtime.sock"
    runtime = ManagedProcess("runtime-unix", [sys.executable, "-m", "harness.test_runtime"], tmp_path / "rt.log",
                             env={**os.environ, "TEST_RUNTIME_SOCKET": str(sock), "TEST_RUNTIME_NAME": "unix-rt",
                                  "PYTHONPATH": f"{ROOT / 'tests'}:{ROOT}"})
    runtime.start(sock.exists, timeout=30)
    mesh = MeshProcess(tmp_path, "unix", etcd.endpoint, runtime_port=0,
                       extra_env={"INTERNAL_GRPC_SOCKET_PATH": str(sock)})
    try:
        mesh.start()
        c = Client(mesh.target)
        try:
            await c.mesh.registerModel(pb.RegisterModelRequest(modelId="sock-m", modelInfo=model_info()))
            resp = await c.infer("sock-m")
            assert resp.model_name == "sock-m" and resp.parameters["runtime"].string_param == "unix-rt"
        finally:
            await c.close()
    finally:
        mesh.stop()
        runtime.stop()
    assert mesh.problems() == []
