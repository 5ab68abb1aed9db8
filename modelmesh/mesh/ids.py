"""Ids that enter through the management API must be usable as file names on every runtime."""

from __future__ import annotations

import grpc

from modelmesh.mesh.errors import MeshError
from modelmesh.modelspec.ids import id_problem


def check_ids(**ids: str) -> None:
    """INVALID_ARGUMENT naming the first field whose id cannot be a file name."""
    for field, value in ids.items():
        problem = id_problem(value)
        if problem:
            raise MeshError(f"invalid {field} {value!r}: {problem}", grpc.StatusCode.INVALID_ARGUMENT)
