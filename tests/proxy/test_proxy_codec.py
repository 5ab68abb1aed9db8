"""The proxy's pure codecs: V2 datatypes <-> wire bytes, typed contents, parameters, the
response renderer (incl. replies a runtime could get wrong) and the gRPC -> HTTP status map."""

from __future__ import annotations

import math
import re
import struct

import grpc
import orjson
import pytest

from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.proxy import parameters
from modelmesh.proxy.errors import GRPC_TO_HTTP
from modelmesh.proxy.infer_codec import InvalidReply, OutputPlan, parse_request, render_response
from modelmesh.proxy.tensors import (
    DATATYPES,
    InvalidInput,
    decode,
    encode,
    flatten,
    from_contents,
    pack_bytes_elements,
    unpack_bytes_elements,
)

VALUES = {
    "BOOL": [True, False], "UINT8": [0, 255], "UINT16": [0, 65535], "UINT32": [0, 2**32 - 1],
    "UINT64": [0, 2**64 - 1], "INT8": [-128, 127], "INT16": [-32768, 32767], "INT32": [-(2**31), 2**31 - 1],
    "INT64": [-(2**63), 2**63 - 1], "FP16": [-65504.0, 0.000061035156250], "FP32": [0.5, -3.0e38],
    "FP64": [math.pi, -1e-300], "BF16": [-2.0, 3.0e38], "BYTES": ["", "ü\x00z"],
}


def _bf16(v: float) -> float:
    (bits,) = struct.unpack("<I", struct.pack("<f", v))
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFF0000))[0]


@pytest.mark.parametrize("name", list(VALUES))
def test_encode_decode_round_trip(name):
    dt = DATATYPES[name]
    raw = encode(dt, VALUES[name], "t")
    if dt.size:
        assert len(raw) == dt.size * len(VALUES[name])
    expected = VALUES[name]
    if name == "FP32":
        expected = list(struct.unpack("<2f", struct.pack("<2f", *expected)))
    if name == "BF16":
        expected = [_bf16(v) for v in expected]
    assert decode(dt, raw, len(expected), "t") == expected


def test_wire_layout_is_little_endian_and_bytes_are_length_prefixed():
    assert encode(DATATYPES["INT32"], [1, -2], "t") == b"\x01\x00\x00\x00\xfe\xff\xff\xff"
    assert encode(DATATYPES["BYTES"], ["ab", ""], "t") == b"\x02\x00\x00\x00ab\x00\x00\x00\x00"
    assert encode(DATATYPES["BF16"], [1.0], "t") == b"\x80\x3f"
    assert unpack_bytes_elements(pack_bytes_elements([b"\xff", b""]), "t") == [b"\xff", b""]


@pytest.mark.parametrize("name, raw, fragment", [
    ("FP32", b"\x00" * 7, "7 bytes for 2 FP32 elements (expected 8)"),
    ("BYTES", b"\x05\x00\x00\x00abc", "BYTES element of 5 bytes overruns"),
    ("BYTES", b"\x01\x00", "truncated BYTES element length"),
    ("BYTES", pack_bytes_elements([b"a"]), "1 elements, shape needs 2"),
])
def test_decode_rejects_bytes_that_do_not_match(name, raw, fragment):
    with pytest.raises(InvalidInput, match=re.escape(fragment)):
        decode(DATATYPES[name], raw, 2, "t")


def test_flatten_accepts_flat_and_nested_row_major():
    assert flatten([1, 2, 3, 4], [2, 2], "d") == [1, 2, 3, 4]
    assert flatten([[[1], [2]], [[3], [4]]], [2, 2, 1], "d") == [1, 2, 3, 4]
    assert flatten([], [0, 3], "d") == []


@pytest.mark.parametrize("name, field, values", [
    ("BOOL", "bool_contents", [True, False]), ("UINT8", "uint_contents", [1, 200]),
    ("UINT64", "uint64_contents", [2**64 - 1]), ("INT16", "int_contents", [-5]),
    ("INT64", "int64_contents", [-(2**63)]), ("FP32", "fp32_contents", [0.5]),
    ("FP64", "fp64_contents", [0.1]), ("BYTES", "bytes_contents", [b"caf\xc3\xa9"]),
])
def test_typed_contents_as_runtimes_may_reply(name, field, values):
    contents = pb.InferTensorContents(**{field: values})
    expected = [v.decode() for v in values] if name == "BYTES" else values
    assert from_contents(DATATYPES[name], contents, "o") == expected


def test_fp16_cannot_come_as_typed_contents():
    with pytest.raises(InvalidInput, match="FP16 cannot travel in typed contents"):
        from_contents(DATATYPES["FP16"], pb.InferTensorContents(), "o")


def _reply(**kw) -> pb.ModelInferResponse:
    return pb.ModelInferResponse(model_name="m", model_version="2", **kw)


def test_render_typed_reply_json_and_binary():
    reply = _reply(id="r", outputs=[
        pb.ModelInferResponse.InferOutputTensor(name="a", datatype="INT32", shape=[2],
                                                contents=pb.InferTensorContents(int_contents=[7, -7])),
        pb.ModelInferResponse.InferOutputTensor(name="b", datatype="FP64", shape=[1],
                                                contents=pb.InferTensorContents(fp64_contents=[0.25])),
    ])
    reply.parameters["u"].uint64_param = 2**64 - 1
    reply.parameters["d"].double_param = 0.5
    reply.parameters["s"].string_param = "x"
    reply.parameters["b"].bool_param = False
    reply.parameters["i"].int64_param = -3
    body, json_len = render_response(reply, OutputPlan(binary_by_name={"b": True}))
    doc = orjson.loads(body[:json_len])
    assert doc["id"] == "r" and doc["parameters"] == {"u": 2**64 - 1, "d": 0.5, "s": "x", "b": False, "i": -3}
    assert doc["outputs"][0] == {"name": "a", "datatype": "INT32", "shape": [2], "data": [7, -7]}
    assert doc["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert body[json_len:] == struct.pack("<d", 0.25)


def test_render_raw_reply_without_binary_is_plain_json():
    reply = _reply(outputs=[pb.ModelInferResponse.InferOutputTensor(name="o", datatype="UINT16", shape=[1, 2])],
                   raw_output_contents=[struct.pack("<2H", 1, 65535)])
    body, json_len = render_response(reply, OutputPlan())
    assert json_len is None
    assert orjson.loads(body)["outputs"][0]["data"] == [1, 65535]


@pytest.mark.parametrize("reply, fragment", [
    (_reply(outputs=[pb.ModelInferResponse.InferOutputTensor(name="o", datatype="FP8", shape=[1])]),
     "unknown datatype 'FP8'"),
    (_reply(outputs=[pb.ModelInferResponse.InferOutputTensor(name="o", datatype="FP32", shape=[2])],
            raw_output_contents=[b"\x00" * 4]), "4 bytes for 2 FP32 elements"),
    (_reply(outputs=[pb.ModelInferResponse.InferOutputTensor(name="o", datatype="FP32", shape=[1])],
            raw_output_contents=[b"\x00" * 4, b"\x00" * 4]), "2 raw_output_contents for 1 outputs"),
])
def test_malformed_runtime_replies_are_invalid_reply(reply, fragment):
    with pytest.raises(InvalidReply, match=fragment):
        render_response(reply, OutputPlan())


def test_parse_request_fills_the_grpc_message():
    body = orjson.dumps({"id": "x", "parameters": {"a": 1, "b": 2**63, "c": 1.5, "d": True, "e": "s",
                                                   "binary_data_output": True},
                         "inputs": [{"name": "i", "datatype": "FP16", "shape": [1, 2], "data": [[1, 2]],
                                     "parameters": {"content_type": "np"}}],
                         "outputs": [{"name": "o", "parameters": {"binary_data": False, "classification": 2}}]})
    request, plan = parse_request(body, None, "vmodel", "3")
    assert (request.model_name, request.model_version, request.id) == ("vmodel", "3", "x")
    assert parameters.to_json(request.parameters) == {"a": 1, "b": 2**63, "c": 1.5, "d": True, "e": "s"}
    assert request.parameters["b"].WhichOneof("parameter_choice") == "uint64_param"
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("i", "FP16", [1, 2])
    assert parameters.to_json(tensor.parameters) == {"content_type": "np"}
    assert list(request.raw_input_contents) == [struct.pack("<2e", 1, 2)]
    assert parameters.to_json(request.outputs[0].parameters) == {"classification": 2}
    assert plan.binary("o") is False and plan.binary("other") is True


def test_status_map_covers_every_grpc_code():
    assert set(GRPC_TO_HTTP) == set(grpc.StatusCode)
    assert GRPC_TO_HTTP[grpc.StatusCode.NOT_FOUND] == 404
    assert GRPC_TO_HTTP[grpc.StatusCode.INVALID_ARGUMENT] == 400
    assert GRPC_TO_HTTP[grpc.StatusCode.UNAVAILABLE] == 503
    assert GRPC_TO_HTTP[grpc.StatusCode.DEADLINE_EXCEEDED] == 504
    assert GRPC_TO_HTTP[grpc.StatusCode.RESOURCE_EXHAUSTED] == 429
    assert GRPC_TO_HTTP[grpc.StatusCode.UNIMPLEMENTED] == 501
