"""Errors the mesh turns into gRPC status codes."""

from __future__ import annotations

import grpc


class MeshError(Exception):
    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelNotFound(MeshError):
    code = grpc.StatusCode.NOT_FOUND


class InvalidRequest(MeshError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class LoadFailed(MeshError):
    """A load failed on an instance (the runtime's message is kept for LOADING_FAILED)."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, instance_id: str = "", retryable_elsewhere: bool = True) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.retryable_elsewhere = retryable_elsewhere


class RuntimeDown(MeshError):
    """This instance's runtime is unreachable: another instance may serve. Not a failure of
    the model (never recorded against it); the reference answers INTERNAL "ModelRuntime
    UNAVAILABLE: ..." for it."""

    code = grpc.StatusCode.INTERNAL


class NoCapacity(MeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ShuttingDown(MeshError):
    code = grpc.StatusCode.UNAVAILABLE


class StoreDown(MeshError):
    """The coordination store is unreachable and the answer needs it (not: "not found")."""

    code = grpc.StatusCode.UNAVAILABLE
