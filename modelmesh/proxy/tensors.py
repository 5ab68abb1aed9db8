"""KServe V2 tensor codec: JSON `data` <-> the wire bytes of `raw_*_contents`.

Every datatype goes through `raw_input_contents` (little-endian, row-major; BYTES as
4-byte length + bytes): it is the only form that carries FP16/BF16, and it lets JSON and
binary-extension inputs mix in one request. `struct` packs in C, range-checks every value
and rejects wrong element types (those errors become the 400 messages below); decoding is
a `memoryview` cast. Measured faster here than `array`, and no numpy is needed.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from modelmesh.protos import grpc_predict_v2_pb2 as pb

# memoryview casts use the host's byte order; the wire is little-endian.
_NATIVE_LE = sys.byteorder == "little"
_U32 = struct.Struct("<I")


class InvalidInput(ValueError):
    """Request content that breaks the V2 protocol: bad tensor data, shape, parameters (HTTP 400)."""


@dataclass(frozen=True)
class DataType:
    name: str
    size: int  # bytes per element; 0 for BYTES (variable)
    fmt: str = ""  # struct format character; "" for BF16 and BYTES
    contents_field: str = ""  # InferTensorContents field runtimes use for typed replies


DATATYPES: dict[str, DataType] = {
    t.name: t
    for t in (
        DataType("BOOL", 1, "?", "bool_contents"),
        DataType("UINT8", 1, "B", "uint_contents"),
        DataType("UINT16", 2, "H", "uint_contents"),
        DataType("UINT32", 4, "I", "uint_contents"),
        DataType("UINT64", 8, "Q", "uint64_contents"),
        DataType("INT8", 1, "b", "int_contents"),
        DataType("INT16", 2, "h", "int_contents"),
        DataType("INT32", 4, "i", "int_contents"),
        DataType("INT64", 8, "q", "int64_contents"),
        DataType("FP16", 2, "e"),
        DataType("FP32", 4, "f", "fp32_contents"),
        DataType("FP64", 8, "d", "fp64_contents"),
        DataType("BF16", 2),
        DataType("BYTES", 0, "", "bytes_contents"),
    )
}
assert all(struct.calcsize("<" + t.fmt) == t.size for t in DATATYPES.values() if t.fmt)


def datatype(name: Any, where: str) -> DataType:
    dt = DATATYPES.get(name) if isinstance(name, str) else None
    if dt is None:
        raise InvalidInput(f"{where}: unknown datatype {name!r} (expected one of {', '.join(DATATYPES)})")
    return dt


def element_count(shape: Any, where: str) -> int:
    """Number of elements of a JSON `shape`, which must be a list of non-negative integers."""
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < 2**63 for d in shape):
        raise InvalidInput(f"{where}: expected a list of non-negative integers, got {_short(shape)}")
    count = 1
    for d in shape:
        count *= d
    return count


def flatten(data: Any, shape: list[int], where: str) -> list:
    """Row-major flat list from flat or nested JSON `data`; nesting must follow `shape`."""
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: expected a JSON array, got {_short(data)}")
    depth = 0
    while data and type(data[0]) is list:
        depth += 1
        if depth >= len(shape):
            raise InvalidInput(f"{where}: nested deeper than shape {shape}")
        if depth == 1 and len(data) != shape[0]:
            raise InvalidInput(f"{where}: {len(data)} rows at depth 0, shape {shape} needs {shape[0]}")
        want = shape[depth]
        for row in data:
            if type(row) is not list or len(row) != want:
                got = f"{len(row)} elements" if type(row) is list else _short(row)
                raise InvalidInput(f"{where}: at depth {depth} expected arrays of {want} elements "
                                  f"(shape {shape}), got {got}")
        data = list(chain.from_iterable(data))
    return data


def encode(dt: DataType, values: list, where: str) -> bytes:
    """Pack flat JSON values into the raw little-endian bytes of datatype `dt`."""
    try:
        return _pack(dt, values)
    except (TypeError, OverflowError, struct.error, ValueError, UnicodeError):
        raise InvalidInput(f"{where}: {dt.name} data {_first_bad(dt, values)}") from None


def _pack(dt: DataType, values: list) -> bytes:
    if dt.name == "BOOL":
        # struct's "?" would take any value by truthiness; V2 JSON booleans are true/false.
        if not all(type(v) is bool for v in values):
            raise TypeError("expected true or false")
    elif dt.name == "BYTES":
        if not all(type(v) is str for v in values):
            raise TypeError("expected a string")
        return pack_bytes_elements([v.encode() for v in values])
    elif dt.name == "BF16":
        return _to_bf16(struct.pack(f"<{len(values)}f", *values))
    return struct.pack(f"<{len(values)}{dt.fmt}", *values)


def decode(dt: DataType, raw: bytes, count: int, where: str) -> list:
    """JSON values of `count` elements of datatype `dt` from raw bytes."""
    if dt.name == "BYTES":
        values = [b.decode("utf-8", "replace") for b in unpack_bytes_elements(raw, where)]
        if len(values) != count:
            raise InvalidInput(f"{where}: {len(values)} elements, shape needs {count}")
        return values
    if len(raw) != count * dt.size:
        raise InvalidInput(f"{where}: {len(raw)} bytes for {count} {dt.name} elements "
                           f"(expected {count * dt.size})")
    if dt.name == "BF16":
        raw, dt = _from_bf16(raw), DATATYPES["FP32"]
    if _NATIVE_LE and dt.fmt != "e":
        return memoryview(raw).cast(dt.fmt).tolist()
    return list(struct.unpack(f"<{count}{dt.fmt}", raw))


def from_contents(dt: DataType, contents: pb.InferTensorContents, where: str) -> list:
    """JSON values of a typed (non-raw) tensor, as some runtimes (MLServer) reply."""
    if not dt.contents_field:
        raise InvalidInput(f"{where}: {dt.name} cannot travel in typed contents")
    values = getattr(contents, dt.contents_field)
    if dt.name == "BYTES":
        return [b.decode("utf-8", "replace") for b in values]
    return list(values)


def check_raw(dt: DataType, raw: bytes, count: int, where: str) -> None:
    """Validate binary-extension bytes against the declared shape before forwarding."""
    if dt.name == "BYTES":
        n = sum(1 for _ in unpack_bytes_elements(raw, where))
        if n != count:
            raise InvalidInput(f"{where}: {n} BYTES elements, shape needs {count}")
    elif len(raw) != count * dt.size:
        raise InvalidInput(f"{where}: {len(raw)} bytes, shape needs {count} x {dt.size} = {count * dt.size}")


def pack_bytes_elements(elements: Sequence[bytes]) -> bytes:
    return b"".join(chain.from_iterable((_U32.pack(len(e)), e) for e in elements))


def unpack_bytes_elements(raw: bytes, where: str) -> list[bytes]:
    out = []
    view = memoryview(raw)
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 4 > end:
            raise InvalidInput(f"{where}: truncated BYTES element length at offset {pos}")
        (n,) = _U32.unpack_from(view, pos)
        pos += 4
        if pos + n > end:
            raise InvalidInput(f"{where}: BYTES element of {n} bytes overruns the tensor at offset {pos}")
        out.append(bytes(view[pos:pos + n]))
        pos += n
    return out


def _to_bf16(fp32_le: bytes) -> bytes:
    # bfloat16 is the upper half of an IEEE float32 (truncation, as tritonclient does).
    out = bytearray(len(fp32_le) // 2)
    out[0::2] = fp32_le[2::4]
    out[1::2] = fp32_le[3::4]
    return bytes(out)


def _from_bf16(raw: bytes) -> bytes:
    wide = bytearray(len(raw) * 2)
    wide[2::4] = raw[0::2]
    wide[3::4] = raw[1::2]
    return bytes(wide)


def _first_bad(dt: DataType, values: list) -> str:
    """Name the first element that does not pack (only runs on the error path)."""
    for i, v in enumerate(values):
        try:
            _pack(dt, [v])
        except (TypeError, OverflowError, struct.error, ValueError, UnicodeError) as e:
            return f"[{i}] = {_short(v)}: {_reason(dt, e)}"
    return "invalid"


def _reason(dt: DataType, e: Exception) -> str:
    if isinstance(e, OverflowError) or "out of range" in str(e) or "format requires" in str(e):
        return f"out of range for {dt.name}"
    if dt.name in ("BOOL", "BYTES"):
        return str(e)
    if dt.fmt and dt.fmt not in "efd":
        return "expected an integer"
    return "expected a number"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
