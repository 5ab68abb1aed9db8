"""The adapter in front of a real Triton (CPU, python backend): a native model repository
pulled from S3 is laid out (config.pbtxt rewritten), loaded, inferred, unloaded."""

from __future__ import annotations

import asyncio
import struct

import grpc
import pytest

from adapters.rig import (
    data_plane, leftovers, ready_in_server, s3_key, start_adapter, stop_adapter, wait_runtime_ready,
)
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_runtime_pb2 as rt

pytestmark = pytest.mark.slow


async def double(stub, model_id: str, values: list[float]) -> list[float]:
    request = v2.ModelInferRequest(model_name=model_id)
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[len(values)])
    request.raw_input_contents.append(struct.pack(f"<{len(values)}f", *values))
    response = await stub.ModelInfer(request)
    return list(struct.unpack(f"<{len(values)}f", response.raw_output_contents[0]))


async def wait_unloaded(stub, model_id: str, timeout_s: float = 30) -> None:
    # Triton may finish an unload just after answering; wait with a deadline.
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await ready_in_server(stub, model_id):
        assert asyncio.get_running_loop().time() < deadline, f"{model_id} still ready {timeout_s}s after unload"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("with_schema", [False, True])
async def test_load_infer_unload_from_s3(triton_rig, triton_adapter, s3_models, with_schema):
    spi = triton_adapter.spi
    model_id = f"doubler-{'schema' if with_schema else 'plain'}__isvc-0123456789"
    extra = {"schema_path": s3_models["doubler-schema"]} if with_schema else {}
    status = await wait_runtime_ready(spi)
    assert status.runtimeVersion.startswith("2.")  # Triton's ServerMetadata version
    loaded = await spi.loadModel(rt.LoadModelRequest(
        modelId=model_id, modelType="mt:triton", modelPath=s3_models["doubler"], modelKey=s3_key("triton", **extra)))
    assert loaded.sizeInBytes > 0

    config = (triton_adapter.root / "_triton_models" / model_id / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "name:" not in config.split("input")[0]
    channel, stub = data_plane(triton_rig)
    async with channel:
        assert await double(stub, model_id, [1.0, -2.5, 3.25]) == [2.0, -5.0, 6.5]
        metadata = await stub.ModelMetadata(v2.ModelMetadataRequest(name=model_id))
        assert list(metadata.inputs[0].shape) == ([3] if with_schema else [-1])
        await spi.unloadModel(rt.UnloadModelRequest(modelId=model_id))
        await wait_unloaded(stub, model_id)
        with pytest.raises(grpc.aio.AioRpcError):
            await double(stub, model_id, [1.0])
    assert leftovers(triton_adapter.root, model_id) == []


async def test_restarted_adapter_purges_leftovers(triton_rig, s3_models):
    model_id = "doubler-leftover__isvc-0000000009"
    first = await start_adapter(triton_rig.settings())
    try:
        await wait_runtime_ready(first.spi)
        await first.spi.loadModel(rt.LoadModelRequest(
            modelId=model_id, modelType="mt:triton", modelPath=s3_models["doubler"], modelKey=s3_key("triton")))
    finally:
        await stop_adapter(first)
    channel, stub = data_plane(triton_rig)
    async with channel:
        assert await ready_in_server(stub, model_id)
        second = await start_adapter(triton_rig.settings())
        try:
            await wait_runtime_ready(second.spi)
            await wait_unloaded(stub, model_id)
            assert leftovers(triton_rig.root, model_id) == []
        finally:
            await stop_adapter(second)
