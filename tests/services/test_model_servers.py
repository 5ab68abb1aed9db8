"""MLServer and Triton fixtures: load a model through the V2 repository API, infer, unload."""

import asyncio
import struct

import grpc
import pytest

from harness.models import IRIS_SAMPLES, sklearn_iris, triton_python_doubler
from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub


async def test_mlserver_loads_sklearn_and_infers(mlserver):
    sklearn_iris(mlserver.models_dir / "iris", mlserver.python, "iris")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mlserver.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"))
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready

        rows = [x for x, _ in IRIS_SAMPLES]
        request = pb.ModelInferRequest(model_name="iris")
        tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[len(rows), 4])
        tensor.contents.fp64_contents.extend(v for row in rows for v in row)
        response = await stub.ModelInfer(request)
        out = response.outputs[0]
        assert out.datatype == "INT64"
        if response.raw_output_contents:
            classes = list(struct.unpack(f"<{len(rows)}q", response.raw_output_contents[0]))
        else:
            classes = list(out.contents.int64_contents)
        assert classes == [c for _, c in IRIS_SAMPLES]

        index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert any(m.name == "iris" and "READY" in m.state for m in index.models)
        await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="iris"))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ModelInfer(request)


async def test_triton_loads_python_model_and_infers(triton):
    triton_python_doubler(triton.repo, "doubler")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{triton.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="doubler"))
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="doubler"))).ready

        values = [1.0, -2.5, 3.25, 0.0]
        request = pb.ModelInferRequest(model_name="doubler")
        request.inputs.add(name="INPUT0", datatype="FP32", shape=[len(values)])
        request.raw_input_contents.append(struct.pack(f"<{len(values)}f", *values))
        response = await stub.ModelInfer(request)
        assert response.outputs[0].name == "OUTPUT0"
        assert list(struct.unpack(f"<{len(values)}f", response.raw_output_contents[0])) == [v * 2 for v in values]

        await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="doubler"))
        # Triton may finish the unload just after answering; wait for it with a deadline.
        deadline = asyncio.get_running_loop().time() + 30
        while (await stub.ModelReady(pb.ModelReadyRequest(name="doubler"))).ready:
            assert asyncio.get_running_loop().time() < deadline, "doubler still ready 30s after unload"
            await asyncio.sleep(0.05)
