"""Read and write one string field of a serialized protobuf message without decoding it.

The mesh routes inference as opaque bytes; to find the model id in a request
(data-plane `idExtractionPath`) or to set it (`idInjectionPath`) it walks only the
top-level tags and skips payloads (tensors) by length.
"""

from __future__ import annotations

WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_SGROUP, WIRE_EGROUP, WIRE_I32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: memoryview | bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _skip(buf: memoryview, pos: int, wire_type: int) -> int:
    if wire_type == WIRE_VARINT:
        return read_varint(buf, pos)[1]
    if wire_type == WIRE_I64:
        pos += 8
    elif wire_type == WIRE_I32:
        pos += 4
    elif wire_type == WIRE_LEN:
        length, pos = read_varint(buf, pos)
        pos += length
    else:
        raise WireError(f"unsupported wire type {wire_type}")
    if pos > len(buf):
        raise WireError("truncated field")
    return pos


def _last_field(buf: memoryview, field_number: int) -> list[memoryview]:
    """Every length-delimited occurrence of `field_number`, in order."""
    found = []
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if number == field_number and wire_type == WIRE_LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise WireError("truncated field")
            found.append(buf[pos:pos + length])
            pos += length
        else:
            pos = _skip(buf, pos, wire_type)
    return found


def extract_string(data: bytes, path: tuple[int, ...]) -> str | None:
    """The value of the string field at `path` as a parser would see it (last one wins;
    occurrences of an embedded message merge). None when absent."""
    if not path:
        return None
    candidates = [memoryview(data)]
    for depth, number in enumerate(path):
        next_level: list[memoryview] = []
        for msg in candidates:
            next_level.extend(_last_field(msg, number))
        if not next_level:
            return None
        candidates = next_level
    try:
        return bytes(candidates[-1]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("model id field is not valid UTF-8") from None


def encode_string_at(path: tuple[int, ...], value: str) -> bytes:
    """Serialized bytes that set the string at `path` when appended to a message."""
    payload = value.encode("utf-8")
    for number in reversed(path):
        payload = encode_varint((number << 3) | WIRE_LEN) + encode_varint(len(payload)) + payload
    return payload


def inject_string(data: bytes, path: tuple[int, ...], value: str) -> bytes:
    """`data` with the string at `path` set to `value`.

    Appending works because for a singular scalar the last occurrence wins and embedded
    messages merge, so the injected id overrides whatever the client sent, at the cost of
    one concatenation instead of re-encoding the message.
    """
    return data + encode_string_at(path, value)
