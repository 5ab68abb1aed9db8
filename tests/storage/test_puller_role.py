"""`modelmesh runtime puller` as a process in front of a custom runtime.

The custom runtime is a tiny ModelRuntime server written here (an in-test fake: it stands
for a user's runtime, which is not ours to run) that records what the puller forwards."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import grpc
import pytest
from harness.process import ManagedProcess, free_port, port_open

from modelmesh.protos import model_runtime_pb2 as pb
from modelmesh.protos import model_runtime_pb2_grpc as pb_grpc


class CustomRuntime(pb_grpc.ModelRuntimeServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object, dict]] = []
        self.fail_load = False

    async def loadModel(self, request, context):
        files = {}
        if os.path.isdir(request.modelPath):  # what the runtime can see at load time
            files = {n: Path(request.modelPath, n).read_bytes() for n in os.listdir(request.modelPath)}
        self.calls.append(("loadModel", request, files))
        if self.fail_load:
            await context.abort(grpc.StatusCode.INTERNAL, "custom runtime: corrupt model")
        return pb.LoadModelResponse(sizeInBytes=12345, maxConcurrency=3)

    async def unloadModel(self, request, context):
        self.calls.append(("unloadModel", request, {}))
        return pb.UnloadModelResponse()

    async def runtimeStatus(self, request, context):
        self.calls.append(("runtimeStatus", request, {}))
        return pb.RuntimeStatusResponse(status=pb.RuntimeStatusResponse.READY, capacityInBytes=10**9)

    async def predictModelSize(self, request, context):
        self.calls.append(("predictModelSize", request, {}))
        return pb.PredictModelSizeResponse(sizeInBytes=777)

    async def modelSize(self, request, context):
        self.calls.append(("modelSize", request, {}))
        return pb.ModelSizeResponse(sizeInBytes=888)


@pytest.fixture
async def rig(layout, tmp_path):
    runtime = CustomRuntime()
    server = grpc.aio.server()
    pb_grpc.add_ModelRuntimeServicer_to_server(runtime, server)
    runtime_port = free_port()
    server.add_insecure_port(f"127.0.0.1:{runtime_port}")
    await server.start()
    puller_port = free_port()
    env = {**os.environ, "PULLER_PORT": str(puller_port), "MODEL_SERVER_ENDPOINT": f"port:{runtime_port}",
           "ROOT_MODEL_DIR": str(layout.root), "STORAGE_CONFIG_DIR": str(layout.configs),
           "PVC_MOUNTS_ROOT": str(layout.pvc), "CONTAINER_MEM_REQ_BYTES": "1000000000", "ADAPTER_HOST": "127.0.0.1"}
    cmd = [sys.executable, "-m", "modelmesh.cli", "runtime", "puller"]
    proc = ManagedProcess("puller", cmd, tmp_path / "puller.log", env=env)
    proc.start(lambda: port_open(puller_port), timeout=30)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{puller_port}")
    model = layout.pvc / "claim" / "models" / "m"
    model.mkdir(parents=True)
    (model / "w.bin").write_bytes(b"weights")
    (layout.pvc / "claim" / "s.json").write_text("{}")
    layout.write_config("pvc", {"type": "pvc", "name": "claim"})
    try:
        yield runtime, pb_grpc.ModelRuntimeStub(channel), layout
    finally:
        await channel.close()
        assert proc.stop() == 0, proc.log_tail()  # graceful stop on SIGTERM
        await server.stop(None)


async def test_load_forwards_local_path_and_rewritten_key(rig):
    runtime, stub, layout = rig
    key = {"storage_key": "pvc", "schema_path": "s.json", "model_type": {"name": "custom"}, "extra": "kept"}
    reply = await stub.loadModel(pb.LoadModelRequest(modelId="m1", modelType="custom", modelPath="models/m",
                                                     modelKey=json.dumps(key)), timeout=20)
    assert (reply.sizeInBytes, reply.maxConcurrency) == (12345, 3)
    name, fwd, files = runtime.calls[-1]
    assert name == "loadModel" and fwd.modelId == "m1" and fwd.modelType == "custom"
    assert fwd.modelPath == str(layout.root / "m1" / "m") and files == {"w.bin": b"weights"}
    assert json.loads(fwd.modelKey) == {"schema_path": str(layout.root / "m1" / "s.json"),
                                        "model_type": {"name": "custom"}, "extra": "kept", "disk_size_bytes": 9}

    size = await stub.predictModelSize(pb.PredictModelSizeRequest(modelId="m1", modelPath="x"), timeout=10)
    assert size.sizeInBytes == 777 and runtime.calls[-1][1].modelPath == "x"  # forwarded unchanged
    assert (await stub.modelSize(pb.ModelSizeRequest(modelId="m1"), timeout=10)).sizeInBytes == 888

    await stub.unloadModel(pb.UnloadModelRequest(modelId="m1"), timeout=10)
    assert runtime.calls[-1][0] == "unloadModel" and runtime.calls[-1][1].modelId == "m1"
    assert not (layout.root / "m1").exists()


async def test_bad_key_is_invalid_argument_and_runtime_not_called(rig):
    runtime, stub, _ = rig
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.loadModel(pb.LoadModelRequest(modelId="m", modelPath="p", modelKey='{"storage_key": "nope"}'),
                             timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "did not find storage config for key 'nope'" in e.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.loadModel(pb.LoadModelRequest(modelId="m", modelPath="models/none",
                                                 modelKey='{"storage_key": "pvc"}'), timeout=10)
    assert e.value.code() == grpc.StatusCode.INTERNAL and "does not exist in PVC" in e.value.details()
    assert runtime.calls == []


async def test_runtime_load_failure_removes_files(rig):
    runtime, stub, layout = rig
    runtime.fail_load = True
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.loadModel(pb.LoadModelRequest(modelId="m2", modelPath="models/m", modelKey='{"storage_key": "pvc"}'),
                             timeout=10)
    assert e.value.code() == grpc.StatusCode.INTERNAL and e.value.details() == "custom runtime: corrupt model"
    assert runtime.calls[-1][2] == {"w.bin": b"weights"}  # the runtime did see the files
    assert not (layout.root / "m2").exists()


async def test_runtime_status_purges_then_forwards(rig):
    runtime, stub, layout = rig
    (layout.root / "left-from-before").mkdir()
    reply = await stub.runtimeStatus(pb.RuntimeStatusRequest(), timeout=10)
    assert reply.status == pb.RuntimeStatusResponse.READY and reply.capacityInBytes == 10**9
    assert runtime.calls[-1][0] == "runtimeStatus" and os.listdir(layout.root) == []
