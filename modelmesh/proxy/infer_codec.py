"""V2 infer JSON (with the binary tensor extension) <-> ModelInferRequest / ModelInferResponse.

Binary tensor extension (as Triton clients speak it): the `Inference-Header-Content-Length`
header gives the length of the JSON part of the body; the bytes after it are the inputs
whose `parameters.binary_data_size` is set, in input order. Outputs asked for with
`parameters.binary_data: true` (or all, with request parameter `binary_data_output: true`)
come back the same way. These parameters steer the HTTP encoding only and are not forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.proxy import parameters
from modelmesh.proxy.tensors import (
    DATATYPES,
    InvalidInput,
    check_raw,
    datatype,
    decode,
    element_count,
    encode,
    flatten,
    from_contents,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
_REQUEST_ONLY = frozenset({"binary_data_output"})
_INPUT_ONLY = frozenset({"binary_data_size"})
_OUTPUT_ONLY = frozenset({"binary_data"})


class InvalidReply(ValueError):
    """A runtime reply that cannot be rendered as V2 JSON (HTTP 502)."""


@dataclass
class OutputPlan:
    """Which outputs the client wants as binary data rather than JSON `data`."""

    binary_default: bool = False
    binary_by_name: dict[str, bool] = field(default_factory=dict)

    def binary(self, name: str) -> bool:
        return self.binary_by_name.get(name, self.binary_default)


def parse_json(raw: bytes, where: str = "request body") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"{where}: malformed JSON: {e}") from None


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """JSON part and binary part of a request body."""
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        raise InvalidInput(f"{HEADER_LENGTH}: expected an integer 0..{len(body)} (the body length), "
                           f"got {header_length!r}")
    return body[:n], body[n:]


def parse_request(body: bytes, header_length: str | None, model_name: str,
                  model_version: str = "") -> tuple[pb.ModelInferRequest, OutputPlan]:
    json_part, binary = split_body(body, header_length)
    doc = parse_json(json_part)
    if not isinstance(doc, dict):
        raise InvalidInput(f"request body: expected a JSON object, got {type(doc).__name__}")
    request = pb.ModelInferRequest(model_name=model_name, model_version=model_version)
    request_id = doc.get("id")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise InvalidInput(f"id: expected a string, got {type(request_id).__name__}")
        request.id = request_id
    params = doc.get("parameters")
    parameters.fill(request.parameters, params, "parameters", skip=_REQUEST_ONLY)
    plan = OutputPlan(binary_default=_flag(params, "binary_data_output", "parameters"))
    request.raw_input_contents.extend(_parse_inputs(doc.get("inputs"), binary, request))
    _parse_outputs(doc.get("outputs"), request, plan)
    return request, plan


def _parse_inputs(inputs: Any, binary: bytes, request: pb.ModelInferRequest) -> list[bytes]:
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("inputs: expected a non-empty array of input tensors")
    raws: list[bytes] = []
    offset = 0
    for i, item in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(item).__name__}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}.name: expected a non-empty string")
        where = f"inputs[{i}] ({name})"
        dt = datatype(item.get("datatype"), f"{where}.datatype")
        shape = item.get("shape")
        count = element_count(shape, f"{where}.shape")
        params = item.get("parameters")
        tensor = request.inputs.add(name=name, datatype=dt.name, shape=shape)
        parameters.fill(tensor.parameters, params, f"{where}.parameters", skip=_INPUT_ONLY)
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if type(size) is not int or size < 0:
                raise InvalidInput(f"{where}.parameters.binary_data_size: expected a non-negative integer")
            if "data" in item:
                raise InvalidInput(f"{where}: has both data and parameters.binary_data_size")
            raw = binary[offset:offset + size]
            if len(raw) != size:
                raise InvalidInput(f"{where}: binary_data_size {size} but only {len(raw)} binary bytes "
                                   f"left in the body")
            offset += size
            check_raw(dt, raw, count, where)
        else:
            if "data" not in item:
                raise InvalidInput(f"{where}.data: missing (and no parameters.binary_data_size)")
            values = flatten(item["data"], shape, f"{where}.data")
            if len(values) != count:
                raise InvalidInput(f"{where}.data: {len(values)} elements, shape {shape} needs {count}")
            raw = encode(dt, values, f"{where}.data")
        raws.append(raw)
    if offset != len(binary):
        raise InvalidInput(f"{HEADER_LENGTH}: {len(binary) - offset} binary bytes after the JSON part "
                           f"are not claimed by any input's binary_data_size")
    return raws


def _parse_outputs(outputs: Any, request: pb.ModelInferRequest, plan: OutputPlan) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list):
        raise InvalidInput("outputs: expected an array of requested outputs")
    for i, item in enumerate(outputs):
        where = f"outputs[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(item).__name__}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}.name: expected a non-empty string")
        params = item.get("parameters")
        out = request.outputs.add(name=name)
        parameters.fill(out.parameters, params, f"{where}.parameters", skip=_OUTPUT_ONLY)
        if isinstance(params, dict) and "binary_data" in params:
            plan.binary_by_name[name] = _flag(params, "binary_data", f"{where}.parameters")


def _flag(params: Any, key: str, where: str) -> bool:
    if not isinstance(params, dict) or key not in params:
        return False
    value = params[key]
    if type(value) is not bool:
        raise InvalidInput(f"{where}.{key}: expected true or false")
    return value


def render_response(response: pb.ModelInferResponse, plan: OutputPlan) -> tuple[bytes, int | None]:
    """The HTTP body, and the JSON part's length when binary outputs follow it (else None)."""
    raw_outputs = response.raw_output_contents
    if raw_outputs and len(raw_outputs) != len(response.outputs):
        raise InvalidReply(f"runtime replied with {len(raw_outputs)} raw_output_contents for "
                           f"{len(response.outputs)} outputs")
    outputs = []
    binaries: list[bytes] = []
    for i, out in enumerate(response.outputs):
        where = f"output {out.name}"
        dt = DATATYPES.get(out.datatype)
        if dt is None:
            raise InvalidReply(f"{where}: unknown datatype {out.datatype!r} in the runtime's reply")
        shape = list(out.shape)
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": shape}
        params = parameters.to_json(out.parameters)
        try:
            if plan.binary(out.name):
                data = raw_outputs[i] if raw_outputs else encode(dt, from_contents(dt, out.contents, where), where)
                params["binary_data_size"] = len(data)
                binaries.append(data)
            else:
                count = element_count(shape, f"{where} shape")
                entry["data"] = (decode(dt, raw_outputs[i], count, where) if raw_outputs
                                 else from_contents(dt, out.contents, where))
        except InvalidInput as e:
            raise InvalidReply(f"runtime reply: {e}") from None
        if params:
            entry["parameters"] = params
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = parameters.to_json(response.parameters)
    doc["outputs"] = outputs
    body = orjson.dumps(doc)
    if not binaries:
        return body, None
    return b"".join([body, *binaries]), len(body)
