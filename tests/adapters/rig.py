"""Helpers for the adapter tests: a model server rig, an in-process adapter, S3 uploads."""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import grpc

from harness.models import IRIS_SAMPLES
from harness.s3_models import BUCKET, STORAGE_KEY, s3_key, upload_dir  # noqa: F401 - re-exported
from modelmesh.adapters.service import AdapterService
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_runtime_pb2 as rt
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub

MEM_REQ = 2 * 1024**3
MEM_BUFFER = 128 * 1024**2


@dataclass
class ServerRig:
    """A real model server plus the ROOT_MODEL_DIR an adapter in front of it uses."""

    server_type: str
    root: Path
    grpc_port: int
    storage_config_dir: Path

    def settings(self, **env: str) -> AdapterSettings:
        base = {
            "SERVER_TYPE": self.server_type, "ADAPTER_PORT": "0", "RUNTIME_PORT": str(self.grpc_port),
            "CONTAINER_MEM_REQ_BYTES": str(MEM_REQ), "MEM_BUFFER_BYTES": str(MEM_BUFFER),
            "LOADING_CONCURRENCY": "2", "LOADTIME_TIMEOUT": "90000", "ROOT_MODEL_DIR": str(self.root),
            "USE_EMBEDDED_PULLER": "true", "STORAGE_CONFIG_DIR": str(self.storage_config_dir),
        }
        return load_settings(AdapterSettings, {**base, **env})


@dataclass
class RunningAdapter:
    service: AdapterService
    channel: grpc.aio.Channel
    spi: ModelRuntimeStub

    @property
    def root(self) -> Path:
        return Path(self.service.settings.root_model_dir)


async def start_adapter(settings: AdapterSettings, **kwargs) -> RunningAdapter:
    service = AdapterService(settings, **kwargs)
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    return RunningAdapter(service, channel, ModelRuntimeStub(channel))


async def stop_adapter(adapter: RunningAdapter) -> None:
    await adapter.channel.close()
    await adapter.service.stop()


def data_plane(rig: ServerRig) -> tuple[grpc.aio.Channel, GRPCInferenceServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{rig.grpc_port}")
    return channel, GRPCInferenceServiceStub(channel)


def leftovers(root: Path, model_id: str) -> list[str]:
    """Every path under ROOT_MODEL_DIR that still belongs to `model_id`."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if model_id in name:
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found


async def ready_in_server(stub: GRPCInferenceServiceStub, model_id: str) -> bool:
    try:
        return (await stub.ModelReady(v2.ModelReadyRequest(name=model_id))).ready
    except grpc.aio.AioRpcError:
        return False  # MLServer answers UNKNOWN/NOT_FOUND for a model it does not have


async def wait_runtime_ready(spi: ModelRuntimeStub, timeout_s: float = 60):
    """Poll runtimeStatus like the mesh does until READY (Triton, for one, reports not
    ready while a model is still unloading)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status = await spi.runtimeStatus(rt.RuntimeStatusRequest())
        if status.status == rt.RuntimeStatusResponse.READY:
            return status
        assert asyncio.get_running_loop().time() < deadline, f"runtime not READY after {timeout_s}s: {status}"
        await asyncio.sleep(0.1)


async def infer_iris(stub, model_id: str) -> list[int]:
    rows = [x for x, _ in IRIS_SAMPLES]
    request = v2.ModelInferRequest(model_name=model_id)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[len(rows), 4])
    tensor.contents.fp64_contents.extend(v for row in rows for v in row)
    response = await stub.ModelInfer(request)
    if response.raw_output_contents:
        return list(struct.unpack(f"<{len(rows)}q", response.raw_output_contents[0]))
    return list(response.outputs[0].contents.int64_contents)
