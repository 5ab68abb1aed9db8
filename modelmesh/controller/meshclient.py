"""The controller's client of the mesh's vmodel API (mmesh.ModelMesh).

Behind a small interface so tests can point it at any gRPC server. Targets come from a
resolver: the ready Endpoints of the namespace's `modelmesh-serving` Service (round robin)
or the `modelMeshEndpoint` config override.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from modelmesh.protos import model_mesh_pb2 as mm
from modelmesh.protos import model_mesh_pb2_grpc as mm_grpc


class MeshUnavailable(ConnectionError):
    """No mesh instance can be reached for this namespace right now."""


class MeshRejected(ValueError):
    """The mesh refused the request (e.g. INVALID_ARGUMENT); the message is for the CR status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class MeshClient(Protocol):
    async def set_vmodel(self, namespace: str, req: mm.SetVModelRequest) -> mm.VModelStatusInfo: ...

    async def get_vmodel_status(self, namespace: str, vmodel_id: str, owner: str) -> mm.VModelStatusInfo: ...

    async def delete_vmodel(self, namespace: str, vmodel_id: str, owner: str) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class TlsFiles:
    root_certs: bytes | None = None
    client_key: bytes | None = None
    client_cert: bytes | None = None


# resolve(namespace) -> (list of "host:port" targets, TLS material or None)
Resolver = Callable[[str], Awaitable[tuple[list[str], TlsFiles | None]]]

_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


class GrpcMeshClient:
    def __init__(self, resolve: Resolver, timeout_s: float = 10.0) -> None:
        self._resolve = resolve
        self._timeout = timeout_s
        self._channels: dict[tuple[str, bool], grpc.aio.Channel] = {}
        self._rr = itertools.count()

    def _channel(self, target: str, tls: TlsFiles | None) -> grpc.aio.Channel:
        key = (target, tls is not None)
        ch = self._channels.get(key)
        if ch is None:
            if tls is None:
                ch = grpc.aio.insecure_channel(target)
            else:
                creds = grpc.ssl_channel_credentials(tls.root_certs, tls.client_key, tls.client_cert)
                ch = grpc.aio.secure_channel(target, creds)
            self._channels[key] = ch
        return ch

    async def _call(self, namespace: str, method: str, request):
        targets, tls = await self._resolve(namespace)
        if not targets:
            raise MeshUnavailable(f"no ready modelmesh endpoints in namespace {namespace}")
        start = next(self._rr)
        last: grpc.aio.AioRpcError | None = None
        for i in range(len(targets)):  # try every instance once, starting round robin
            stub = mm_grpc.ModelMeshStub(self._channel(targets[(start + i) % len(targets)], tls))
            try:
                return await getattr(stub, method)(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as e:
                if e.code() not in _UNREACHABLE:
                    raise MeshRejected(e.code(), e.details() or e.code().name) from None
                last = e
        raise MeshUnavailable(f"modelmesh unreachable in namespace {namespace}: {last.details() if last else ''}")

    async def set_vmodel(self, namespace: str, req: mm.SetVModelRequest) -> mm.VModelStatusInfo:
        return await self._call(namespace, "setVModel", req)

    async def get_vmodel_status(self, namespace: str, vmodel_id: str, owner: str) -> mm.VModelStatusInfo:
        return await self._call(namespace, "getVModelStatus", mm.GetVModelStatusRequest(vModelId=vmodel_id,
                                                                                           owner=owner))

    async def delete_vmodel(self, namespace: str, vmodel_id: str, owner: str) -> None:
        await self._call(namespace, "deleteVModel", mm.DeleteVModelRequest(vModelId=vmodel_id, owner=owner))

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
