"""The mesh's gRPC servers: the external port (management API + inference) and the
internal port peers forward to. Inference methods are caught by a generic handler that
receives and returns raw bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from modelmesh.config.tls import ServerTls
from modelmesh.mesh.api import ModelMeshApi
from modelmesh.mesh.coordinator import ENSURE_LOADED
from modelmesh.mesh.errors import MeshError
from modelmesh.mesh.router import Router
from modelmesh.observability.logging import get_logger
from modelmesh.mesh.v2_server import V2ServerRpcs
from modelmesh.protos import model_mesh_pb2 as pb
from modelmesh.protos.model_mesh_pb2_grpc import add_ModelMeshServicer_to_server

log = get_logger("modelmesh.mesh.server")


class _RawInference(grpc.GenericRpcHandler):
    """Any method not registered otherwise: unary, bytes in and out."""

    def __init__(self, router: Router, internal: bool,
                 internal_ensure_loaded: Callable[[pb.EnsureLoadedRequest], Awaitable[pb.ModelStatusInfo]] | None,
                 server_rpcs: V2ServerRpcs | None = None):
        self._router = router
        self._server_rpcs = server_rpcs
        self._internal = internal
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._ensure_loaded = internal_ensure_loaded

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        handler = self._handlers.get(method)
        if handler is None:
            answered_here = self._server_rpcs.handler(method) if self._server_rpcs is not None else None
            if answered_here is not None:
                handler = answered_here
            elif self._internal and method == ENSURE_LOADED and self._ensure_loaded is not None:
                ensure = self._ensure_loaded

                async def ensure_loaded(request: pb.EnsureLoadedRequest, context) -> pb.ModelStatusInfo:
                    try:
                        return await ensure(request)
                    except MeshError as e:
                        await context.abort(e.code, e.message)

                handler = grpc.unary_unary_rpc_method_handler(
                    ensure_loaded, request_deserializer=pb.EnsureLoadedRequest.FromString,
                    response_serializer=pb.ModelStatusInfo.SerializeToString)
            else:
                router, internal = self._router, self._internal

                async def forward(request: bytes, context) -> bytes:
                    return await router.handle(method, request, context, internal)

                handler = grpc.unary_unary_rpc_method_handler(forward)
            if len(self._handlers) < 1000:  # bounded: method names come from clients
                self._handlers[method] = handler
        return handler


def _server_options(max_msg_size: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_msg_size),
        ("grpc.max_send_message_length", max_msg_size),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10000),
    ]


def server_credentials(tls: ServerTls | None) -> grpc.ServerCredentials | None:
    """The external port: TLS when configured, client certificates as MM_TLS_CLIENT_AUTH says."""
    if tls is None:
        return None
    pair = [(tls.identity.private_key, tls.identity.cert_chain)]
    if tls.client_auth == "none":
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=tls.roots,
                                       require_client_auth=tls.client_auth == "require")


def internal_server_credentials(tls: ServerTls | None) -> grpc.ServerCredentials | None:
    """The internal port: when TLS is configured, mutual TLS whatever the external client auth
    (as the reference secures its internal links): only holders of a certificate the peers
    trust (the shared one, or one issued by the trust bundle) may forward or load through it."""
    if tls is None:
        return None
    if not tls.identity.client_usable:
        log.warning("the TLS certificate's extended key usage leaves out clientAuth: peers cannot present it, "
                    "so forwarding between instances will fail", certificate_name=tls.identity.name)
    return grpc.ssl_server_credentials([(tls.identity.private_key, tls.identity.cert_chain)],
                                       root_certificates=tls.roots, require_client_auth=True)


def build_external_server(api: ModelMeshApi, router: Router, max_msg_size: int,
                          server_rpcs: V2ServerRpcs | None = None) -> grpc.aio.Server:
    server = grpc.aio.server(options=_server_options(max_msg_size))
    add_ModelMeshServicer_to_server(api, server)
    server.add_generic_rpc_handlers((_RawInference(router, internal=False, internal_ensure_loaded=None,
                                                   server_rpcs=server_rpcs),))
    return server


def build_internal_server(router: Router, max_msg_size: int,
                          ensure_loaded: Callable[[pb.EnsureLoadedRequest], Awaitable[pb.ModelStatusInfo]]) -> grpc.aio.Server:
    server = grpc.aio.server(options=_server_options(max_msg_size))
    server.add_generic_rpc_handlers((_RawInference(router, internal=True, internal_ensure_loaded=ensure_loaded),))
    return server


def bind(server: grpc.aio.Server, host: str, port: int, credentials=None) -> int:
    address = f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"cannot listen on {address}: {e}") from None
    if bound == 0:
        raise OSError(f"cannot listen on {address}: address in use or not available")
    return bound
