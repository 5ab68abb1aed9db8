"""Adapter errors carry the gRPC status the mesh sees; the message is the user's only clue."""

from __future__ import annotations

import grpc


class AdapterError(Exception):
    """A failure with the gRPC code to answer with."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidModel(AdapterError):
    """Bad request, model files or schema: nothing was loaded (INVALID_ARGUMENT)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ServerLoadError(AdapterError):
    """The model server refused or failed the load."""

    code = grpc.StatusCode.INTERNAL


class ServerUnavailable(AdapterError):
    """The model server cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE
