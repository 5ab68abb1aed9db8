"""Drivers for servers with the KServe V2 gRPC repository extension (Triton, MLServer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import grpc

from modelmesh.adapters.driver import V2_METHODS
from modelmesh.adapters.errors import AdapterError, ServerLoadError, ServerUnavailable
from modelmesh.observability.logging import get_logger
from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

log = get_logger("modelmesh.adapters.v2")

LayOut = Callable[[str, str, str, str, str | None], str]

# Cheap control calls (readiness, index, unload) get a deadline; load has the servicer's.
CONTROL_TIMEOUT_S = 10.0


class V2RepositoryDriver:
    display_name: ClassVar[str] = "model server"
    # Codes that mean "not loaded" when unloading (MLServer adds INVALID_ARGUMENT).
    unknown_model_codes: ClassVar[frozenset[grpc.StatusCode]] = frozenset({grpc.StatusCode.NOT_FOUND})
    method_infos = V2_METHODS
    reports_size = False

    def __init__(self, target: str, layout_root: str, lay_out: LayOut) -> None:
        self.target = target
        self.layout_root = layout_root
        self._lay_out = lay_out
        self._channel: grpc.aio.Channel | None = None
        self._stub: GRPCInferenceServiceStub | None = None

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.target)
        self._stub = GRPCInferenceServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    @property
    def stub(self) -> GRPCInferenceServiceStub:
        assert self._stub is not None, "driver not started"
        return self._stub

    def _error(self, what: str, e: grpc.aio.AioRpcError) -> AdapterError:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            return ServerUnavailable(f"{self.display_name} at {self.target} is not reachable ({what}): {e.details()}")
        return ServerLoadError(f"{self.display_name} failed to {what}: {e.details() or e.code().name}")

    async def is_ready(self) -> bool:
        try:
            return (await self.stub.ServerReady(pb.ServerReadyRequest(), timeout=2)).ready
        except grpc.aio.AioRpcError:
            return False

    async def version(self) -> str:
        try:
            return (await self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=CONTROL_TIMEOUT_S)).version
        except grpc.aio.AioRpcError:
            return ""

    def lay_out(self, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
        return self._lay_out(self.layout_root, model_id, model_type, model_path, schema_path)

    async def load(self, model_id: str, laid_out: str) -> None:
        try:
            await self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=model_id))
        except grpc.aio.AioRpcError as e:
            raise self._error(f"load model {model_id}", e) from None

    async def unload(self, model_id: str) -> None:
        try:
            await self.stub.RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name=model_id), timeout=CONTROL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as e:
            if e.code() in self.unknown_model_codes:
                log.debug("unload of a model the server does not know", model_id=model_id, details=e.details())
                return
            raise self._error(f"unload model {model_id}", e) from None

    async def unload_all(self) -> None:
        try:
            index = await self.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=CONTROL_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            raise self._error("list its models (RepositoryIndex)", e) from None
        for model in index.models:
            # Every listed model, whatever its state: a half-loaded leftover must go too.
            await self.unload(model.name)
            log.info("unloaded leftover model", model_id=model.name, state=model.state)

    async def model_size(self, model_id: str) -> int | None:
        return None
