"""Client of the ModelRuntime SPI (the adapter or a custom runtime) and the start-up handshake."""

from __future__ import annotations

import asyncio
import time

import grpc

from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_runtime_pb2 as rt
from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub

log = get_logger("modelmesh.mesh.runtime")

PREDICT_SIZE_TIMEOUT_S = 0.5
MODEL_SIZE_TIMEOUT_S = 30.0


def runtime_target(port: int | None, socket_path: str = "", host: str = "127.0.0.1") -> str:
    return f"unix://{socket_path}" if socket_path else f"{host}:{port}"


class RuntimeClient:
    def __init__(self, target: str, max_msg_size: int = 16 * 1024 * 1024) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_msg_size), ("grpc.max_send_message_length", max_msg_size),
        ])
        self.stub = ModelRuntimeStub(self.channel)

    async def wait_ready(self, poll_interval_s: float = 2.0, timeout_s: float = 180.0) -> rt.RuntimeStatusResponse:
        """Poll runtimeStatus until READY (the runtime purges leftovers before saying so)."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                status = await self.stub.runtimeStatus(rt.RuntimeStatusRequest(), timeout=10)
                if status.status == rt.RuntimeStatusResponse.READY:
                    return status
                last = rt.RuntimeStatusResponse.Status.Name(status.status)
            except grpc.aio.AioRpcError as e:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # grpc.aio may turn our own cancellation (a SIGTERM during start-up) into an
                    # RPC error; swallowing it would keep start-up waiting for the runtime.
                    raise asyncio.CancelledError() from e
                last = f"{e.code().name}: {e.details()}"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"runtime at {self.target} not READY after {timeout_s:.0f}s (last: {last})")
            log.info("waiting for runtime", target=self.target, last=last)
            await asyncio.sleep(poll_interval_s)

    async def load(self, model_id: str, model_type: str, path: str, key: str, timeout_s: float) -> rt.LoadModelResponse:
        return await self.stub.loadModel(
            rt.LoadModelRequest(modelId=model_id, modelType=model_type, modelPath=path, modelKey=key),
            timeout=timeout_s)

    async def unload(self, model_id: str, timeout_s: float = 60.0) -> None:
        await self.stub.unloadModel(rt.UnloadModelRequest(modelId=model_id), timeout=timeout_s)

    async def predict_size(self, model_id: str, model_type: str, path: str, key: str) -> int | None:
        try:
            r = await self.stub.predictModelSize(
                rt.PredictModelSizeRequest(modelId=model_id, modelType=model_type, modelPath=path, modelKey=key),
                timeout=PREDICT_SIZE_TIMEOUT_S)
            return r.sizeInBytes or None
        except grpc.aio.AioRpcError:
            return None  # optional in the SPI; the default size is used instead

    async def model_size(self, model_id: str) -> int | None:
        try:
            r = await self.stub.modelSize(rt.ModelSizeRequest(modelId=model_id), timeout=MODEL_SIZE_TIMEOUT_S)
            return r.sizeInBytes or None
        except grpc.aio.AioRpcError:
            return None

    async def close(self) -> None:
        await self.channel.close()
