"""V2 `parameters` maps: JSON values <-> InferParameter (bool, int64, uint64, double, string)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.proxy.tensors import InvalidInput

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def fill(target: Any, params: Any, where: str, skip: frozenset[str] = frozenset()) -> None:
    """Copy a JSON object of scalars into a protobuf map<string, InferParameter>."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(params).__name__}")
    for key, value in params.items():
        if key in skip:
            continue
        p = target[key]
        kind = type(value)
        if kind is bool:
            p.bool_param = value
        elif kind is int:
            if _INT64_MIN <= value <= _INT64_MAX:
                p.int64_param = value
            elif 0 <= value <= _UINT64_MAX:
                p.uint64_param = value
            else:
                raise InvalidInput(f"{where}.{key}: integer {value} does not fit in 64 bits")
        elif kind is float:
            p.double_param = value
        elif kind is str:
            p.string_param = value
        else:
            del target[key]
            raise InvalidInput(f"{where}.{key}: expected a string, number or boolean, got {kind.__name__}")


def to_json(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, p in params.items():
        choice = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, choice) if choice else None
    return out
