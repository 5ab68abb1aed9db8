"""KServe V2 RPCs the mesh treats specially.

Server-level RPCs (ServerLive, ServerReady, ServerMetadata) name no model, so there is no
copy to route them to: the mesh answers them itself (live: this process serves; ready: this
instance takes requests; metadata: our name, version and extensions). Without this a REST
`GET /v2/health/ready` or `tritonclient.is_server_ready()` through the mesh fails.

Model-level RPCs without a payload worth forwarding blind (ModelReady, ModelMetadata) carry
the model name in field 1: the mesh routes them by it when the client sent no mesh header,
and injects the concrete model id there, whatever the runtime's methodInfos list.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from modelmesh import __version__
from modelmesh.protos import grpc_predict_v2_pb2 as v2

SERVICE = "/inference.GRPCInferenceService/"
SERVER_NAME = "modelmesh"

# method -> field path of the model name (the id is read from and injected there)
MODEL_NAME_PATHS: dict[str, tuple[int, ...]] = {
    SERVICE + "ModelReady": (1,),
    SERVICE + "ModelMetadata": (1,),
}


class V2ServerRpcs:
    """Answers the V2 server-level RPCs; `handler` is None for every other method."""

    def __init__(self, ready: Callable[[], bool],
                 observe: Callable[[str, str, float], None] = lambda method, code, started: None) -> None:
        self._ready = ready
        self._observe = observe  # (short method name, status code name, perf_counter at start)
        self._handlers = {
            SERVICE + "ServerLive": self._unary("ServerLive", v2.ServerLiveRequest, self._live),
            SERVICE + "ServerReady": self._unary("ServerReady", v2.ServerReadyRequest, self._ready_response),
            SERVICE + "ServerMetadata": self._unary("ServerMetadata", v2.ServerMetadataRequest, self._metadata),
        }

    def handler(self, method: str) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(method)

    def _unary(self, name: str, request_type, answer) -> grpc.RpcMethodHandler:
        observe = self._observe

        async def handle(request, context):
            started = time.perf_counter()
            try:
                return answer()
            finally:
                observe(name, "OK", started)

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=request_type.FromString,
            response_serializer=lambda m: m.SerializeToString())

    @staticmethod
    def _live() -> v2.ServerLiveResponse:
        return v2.ServerLiveResponse(live=True)

    def _ready_response(self) -> v2.ServerReadyResponse:
        return v2.ServerReadyResponse(ready=bool(self._ready()))

    @staticmethod
    def _metadata() -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=[])
