"""`modelmesh runtime puller`: the standalone puller for custom runtimes.

A custom runtime implements the ModelRuntime SPI itself but cannot read from storage. The
puller serves the SPI on PULLER_PORT in front of it: loadModel pulls the files, then
forwards the request with modelPath = the local path and the modelKey rewritten (storage
fields removed, local schema_path, disk_size_bytes); unloadModel forwards and then deletes
the files; runtimeStatus purges local files and forwards; sizes are forwarded as is.
"""

from __future__ import annotations

import asyncio

import grpc
import orjson

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.common import MetricsSpec
from modelmesh.lifecycle import StartupError
from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_runtime_pb2 as pb
from modelmesh.protos import model_runtime_pb2_grpc as pb_grpc
from modelmesh.storage import Puller, PullError, PullInputError
from modelmesh.storage.errors import TransientError

log = get_logger("modelmesh.runtime.puller")


def runtime_target(endpoint: str, default_port: int) -> str:
    """gRPC target of the runtime's SPI: `port:N` -> 127.0.0.1:N, `unix:/p` as is."""
    endpoint = endpoint.strip() or f"port:{default_port}"
    kind, _, value = endpoint.partition(":")
    if kind == "port" and value.isdigit():
        return f"127.0.0.1:{value}"
    if kind == "unix" and value:
        return endpoint
    raise StartupError(f"MODEL_SERVER_ENDPOINT must be port:N or unix:/path, got {endpoint!r}")


class PullingForwarder(pb_grpc.ModelRuntimeServicer):
    def __init__(self, puller: Puller, runtime: pb_grpc.ModelRuntimeStub) -> None:
        self.puller = puller
        self.runtime = runtime

    async def _forward(self, call, request, context: grpc.aio.ServicerContext):
        """Call the runtime with the caller's deadline; its error status is passed on as is."""
        try:
            return await call(request, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as e:
            await context.abort(e.code(), e.details() or "")

    async def loadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext) -> pb.LoadModelResponse:
        try:
            pulled = await self.puller.pull(request.modelId, request.modelPath, request.modelKey)
        except PullInputError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except TransientError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"pulling the model from storage failed: {e}")
        except PullError as e:
            await context.abort(grpc.StatusCode.INTERNAL, f"pulling the model from storage failed: {e}")
        forwarded = pb.LoadModelRequest(
            modelId=request.modelId, modelType=request.modelType, modelPath=pulled.local_path,
            modelKey=orjson.dumps(pulled.model_key).decode(),
        )
        try:
            return await self.runtime.loadModel(forwarded, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as e:
            # Files go before the caller hears of the failure (abort answers at once).
            await asyncio.shield(self.puller.remove(request.modelId))
            await context.abort(e.code(), e.details() or "")
        except BaseException:  # cancelled: shielded so a second cancel cannot leave files
            await asyncio.shield(self.puller.remove(request.modelId))
            raise

    async def unloadModel(self, request: pb.UnloadModelRequest,
                          context: grpc.aio.ServicerContext) -> pb.UnloadModelResponse:
        try:
            reply = await self.runtime.unloadModel(request, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as e:
            await asyncio.shield(self.puller.remove(request.modelId))
            await context.abort(e.code(), e.details() or "")
        await asyncio.shield(self.puller.remove(request.modelId))
        return reply

    async def runtimeStatus(self, request: pb.RuntimeStatusRequest,
                            context: grpc.aio.ServicerContext) -> pb.RuntimeStatusResponse:
        # The mesh asks at (re)start, when everything loaded before is to be forgotten.
        await self.puller.purge()
        return await self._forward(self.runtime.runtimeStatus, request, context)

    async def predictModelSize(self, request: pb.PredictModelSizeRequest,
                               context: grpc.aio.ServicerContext) -> pb.PredictModelSizeResponse:
        return await self._forward(self.runtime.predictModelSize, request, context)

    async def modelSize(self, request: pb.ModelSizeRequest, context: grpc.aio.ServicerContext) -> pb.ModelSizeResponse:
        return await self._forward(self.runtime.modelSize, request, context)


class PullerApp(ObservedApp):
    def __init__(self, settings: AdapterSettings) -> None:
        super().__init__("runtime-puller", MetricsSpec(enabled=False), None)
        self.settings = settings
        self.puller = Puller.from_settings(settings)
        self.target = runtime_target(settings.model_server_endpoint, settings.runtime_port)
        self.channel: grpc.aio.Channel | None = None
        self.server: grpc.aio.Server | None = None

    async def start_components(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.target)
        self.server = grpc.aio.server()
        pb_grpc.add_ModelRuntimeServicer_to_server(
            PullingForwarder(self.puller, pb_grpc.ModelRuntimeStub(self.channel)), self.server)
        address = f"{self.settings.adapter_host}:{self.settings.puller_port}"
        try:
            self.server.add_insecure_port(address)
        except RuntimeError as e:
            raise StartupError(f"cannot serve the ModelRuntime SPI on {address}: {e}") from e
        await self.server.start()
        self.ready = True
        log.info("puller serving", address=address, runtime=self.target, root=self.puller.root)

    async def stop_components(self) -> None:
        if self.server:
            await self.server.stop(grace=5)
        if self.channel:
            await self.channel.close()
        await self.puller.close()


def make_app(settings: AdapterSettings) -> ObservedApp:
    return PullerApp(settings)
