"""The KServe V2 REST routes, each translated to its GRPCInferenceService call.

Handlers raise (InvalidInput, InvalidReply, ProxyError, gRPC errors); the server's
middleware turns those into `{"error": ...}` responses, so each handler is the happy path.
The model name from the URL is the vmodel (InferenceService) name: it goes into the request
and into `mm-vmodel-id` metadata, which is what the mesh routes on.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.proxy.channel import GrpcChannel
from modelmesh.proxy.errors import ProxyError
from modelmesh.proxy.infer_codec import HEADER_LENGTH, parse_request, render_response

VMODEL_METADATA_KEY = "mm-vmodel-id"


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")


def _tensor_meta(tensors) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors]


class V2Handlers:
    def __init__(self, channel: GrpcChannel, max_request_bytes: int) -> None:
        self._channel = channel
        self._stub: GRPCInferenceServiceStub | None = None
        self._max_request_bytes = max_request_bytes

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v2/health/live", self.server_live)
        r.add_get("/v2/health/ready", self.server_ready)
        r.add_get("/v2", self.server_metadata)
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            r.add_get(prefix, self.model_metadata)
            r.add_get(prefix + "/ready", self.model_ready)
            r.add_post(prefix + "/infer", self.infer)

    async def _grpc(self) -> GRPCInferenceServiceStub:
        if self._stub is None:
            self._stub = GRPCInferenceServiceStub(await self._channel.get())
        return self._stub

    async def server_live(self, _request: web.Request) -> web.Response:
        live = (await (await self._grpc()).ServerLive(pb.ServerLiveRequest())).live
        return _json({"live": live}, 200 if live else 503)

    async def server_ready(self, _request: web.Request) -> web.Response:
        ready = (await (await self._grpc()).ServerReady(pb.ServerReadyRequest())).ready
        return _json({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self, _request: web.Request) -> web.Response:
        meta = await (await self._grpc()).ServerMetadata(pb.ServerMetadataRequest())
        return _json({"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)})

    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        meta = await (await self._grpc()).ModelMetadata(
            pb.ModelMetadataRequest(name=name, version=version), metadata=_route_to(name), timeout=_deadline(request))
        return _json({
            "name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
            "inputs": _tensor_meta(meta.inputs), "outputs": _tensor_meta(meta.outputs),
        })

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        ready = (await (await self._grpc()).ModelReady(
            pb.ModelReadyRequest(name=name, version=version), metadata=_route_to(name),
            timeout=_deadline(request))).ready
        return _json({"name": name, "ready": ready}, 200 if ready else 503)

    async def infer(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        if request.content_length is not None and request.content_length > self._max_request_bytes:
            # Refuse on the header alone, before reading a body that is too large.
            raise ProxyError(413, f"request body of {request.content_length} bytes exceeds the limit of "
                                  f"{self._max_request_bytes} bytes (REST_PROXY_MAX_REQUEST_BYTES)")
        body = await request.read()
        infer_request, plan = parse_request(body, request.headers.get(HEADER_LENGTH), name, version)
        response = await (await self._grpc()).ModelInfer(infer_request, metadata=_route_to(name),
                                                         timeout=_deadline(request))
        payload, json_length = render_response(response, plan)
        if json_length is None:
            return web.Response(body=payload, content_type="application/json")
        return web.Response(body=payload, content_type="application/octet-stream",
                            headers={HEADER_LENGTH: str(json_length)})


def _model(request: web.Request) -> tuple[str, str]:
    name = request.match_info["name"]
    # gRPC metadata values are printable ASCII; vmodel names are Kubernetes names anyway.
    if not (name.isascii() and name.isprintable()):
        raise ProxyError(400, f"model name {name!r}: expected printable ASCII")
    return name, request.match_info.get("version", "")


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def _deadline(request: web.Request) -> float | None:
    """The client's deadline, as grpc-gateway takes it: header `Grpc-Timeout: <n><H|M|S|m|u|n>`."""
    raw = request.headers.get("Grpc-Timeout")
    if raw is None:
        return None
    value, unit = raw[:-1], raw[-1:]
    if not value.isdigit() or unit not in _TIMEOUT_UNITS or len(value) > 8:
        raise ProxyError(400, f"Grpc-Timeout {raw!r}: expected up to 8 digits and a unit H, M, S, m, u or n")
    return int(value) * _TIMEOUT_UNITS[unit]


def _route_to(name: str) -> tuple[tuple[str, str], ...]:
    return ((VMODEL_METADATA_KEY, name),)
