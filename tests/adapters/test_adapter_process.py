"""`modelmesh runtime adapter` as its own process (env settings only) in front of a real
MLServer: READY over the SPI, a model from S3 served, clean exit on SIGTERM."""

from __future__ import annotations

import os
import sys

import grpc

from adapters.rig import MEM_BUFFER, MEM_REQ, data_plane, infer_iris, leftovers, s3_key, wait_runtime_ready
from harness.models import IRIS_SAMPLES
from harness.process import ManagedProcess, free_port, port_open
from modelmesh.protos import model_runtime_pb2 as rt
from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub


async def test_adapter_process_in_front_of_mlserver(mlserver_rig, s3_models, tmp_path):
    port = free_port()
    env = {
        **os.environ, "SERVER_TYPE": "mlserver", "ADAPTER_PORT": str(port), "RUNTIME_PORT": str(mlserver_rig.grpc_port),
        "CONTAINER_MEM_REQ_BYTES": str(MEM_REQ), "MEM_BUFFER_BYTES": str(MEM_BUFFER), "LOADTIME_TIMEOUT": "90000",
        "ROOT_MODEL_DIR": str(mlserver_rig.root), "USE_EMBEDDED_PULLER": "true",
        "STORAGE_CONFIG_DIR": str(mlserver_rig.storage_config_dir), "LOG_FORMAT": "json",
    }
    proc = ManagedProcess("adapter", [sys.executable, "-m", "modelmesh.cli", "runtime", "adapter"],
                          tmp_path / "adapter.log", env=env)
    proc.start(lambda: port_open(port), timeout=30)
    model_id = "iris-process__isvc-0000000042"
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            spi = ModelRuntimeStub(channel)
            status = await wait_runtime_ready(spi)
            assert status.capacityInBytes == MEM_REQ - MEM_BUFFER
            await spi.loadModel(rt.LoadModelRequest(modelId=model_id, modelType="mt:sklearn",
                                                    modelPath=s3_models["iris"], modelKey=s3_key("sklearn")))
            data_channel, stub = data_plane(mlserver_rig)
            async with data_channel:
                assert await infer_iris(stub, model_id) == [c for _, c in IRIS_SAMPLES]
            await spi.unloadModel(rt.UnloadModelRequest(modelId=model_id))
        assert leftovers(mlserver_rig.root, model_id) == []
    finally:
        code = proc.stop()
    assert code == 0, proc.log_tail()  # SIGTERM is a graceful stop
