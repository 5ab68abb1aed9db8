"""The REST proxy in front of a real Triton: every endpoint, every V2 datatype round trip
(through the `echo` python model), nested data, the binary tensor extension both ways,
parameters, requested outputs and gRPC -> HTTP error mapping."""

from __future__ import annotations

import asyncio

import struct

import orjson
import pytest

from harness.echo_models import ECHO_DATATYPES
from harness.process import free_port
from modelmesh.proxy.tensors import DATATYPES, pack_bytes_elements

HEADER = "Inference-Header-Content-Length"

# Two rows per datatype, with the extremes of each range; floats exactly representable.
SAMPLES: dict[str, list[list]] = {
    "BOOL": [[True, False, True], [False, False, True]],
    "UINT8": [[0, 255, 7], [1, 2, 3]],
    "UINT16": [[0, 65535, 7], [1, 2, 3]],
    "UINT32": [[0, 2**32 - 1, 7], [1, 2, 3]],
    "UINT64": [[0, 2**64 - 1, 7], [1, 2, 3]],
    "INT8": [[-128, 127, 0], [1, -2, 3]],
    "INT16": [[-32768, 32767, 0], [1, -2, 3]],
    "INT32": [[-(2**31), 2**31 - 1, 0], [1, -2, 3]],
    "INT64": [[-(2**63), 2**63 - 1, 0], [1, -2, 3]],
    "FP16": [[0.5, -2.0, 65504.0], [0.0, 1.25, -0.125]],
    "FP32": [[1.5, -0.25, 16777216.0], [0.0, 3.0e-05, -1.0e30]],
    "FP64": [[0.1, -1e300, 2.5], [5e-324, 1.0, -0.0]],
    "BF16": [[1.5, -2.0, 256.0], [0.0, 0.5, -3.0]],
    "BYTES": [["", "héllo", "a b"], ["\u2603", "x" * 100, "0"]],
}
assert set(SAMPLES) == set(ECHO_DATATYPES) == set(DATATYPES)


def _flat(rows: list[list]) -> list:
    return [v for row in rows for v in row]


def _expected(datatype: str, values: list) -> list:
    # FP32 is single precision: compare with what float32 rounding gives.
    if datatype == "FP32":
        return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))
    return values


async def _infer(http, url: str, model: str, doc: dict, **kw):
    async with http.post(f"{url}/v2/models/{model}/infer", data=orjson.dumps(doc), **kw) as r:
        return r.status, r.headers, await r.read()


def _outputs(body: bytes) -> dict[str, dict]:
    return {o["name"]: o for o in orjson.loads(body)["outputs"]}


@pytest.mark.parametrize("datatype", list(SAMPLES))
async def test_every_datatype_round_trips_nested(triton_url, http, datatype):
    rows = SAMPLES[datatype]
    doc = {"inputs": [{"name": f"IN_{datatype}", "datatype": datatype, "shape": [2, 3], "data": rows}],
           "outputs": [{"name": f"OUT_{datatype}"}]}
    status, headers, body = await _infer(http, triton_url, "echo", doc)
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    out = _outputs(body)[f"OUT_{datatype}"]
    assert out["datatype"] == datatype and out["shape"] == [2, 3]
    assert out["data"] == _expected(datatype, _flat(rows))


async def test_all_datatypes_flat_in_one_request(triton_url, http):
    doc = {"id": "req-42", "inputs": [
        {"name": f"IN_{dt}", "datatype": dt, "shape": [3, 2], "data": _flat(rows)} for dt, rows in SAMPLES.items()
    ]}
    status, _, body = await _infer(http, triton_url, "echo", doc)
    assert status == 200, body
    reply = orjson.loads(body)
    assert reply["model_name"] == "echo" and reply["model_version"] == "1" and reply["id"] == "req-42"
    outs = _outputs(body)
    for dt, rows in SAMPLES.items():
        assert outs[f"OUT_{dt}"]["shape"] == [3, 2]
        assert outs[f"OUT_{dt}"]["data"] == _expected(dt, _flat(rows)), dt


async def test_requested_outputs_limit_the_reply(triton_url, http):
    doc = {"inputs": [{"name": "IN_INT32", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]},
                      {"name": "IN_FP64", "datatype": "FP64", "shape": [1, 1], "data": [0.5]}],
           "outputs": [{"name": "OUT_FP64"}]}
    status, _, body = await _infer(http, triton_url, "echo", doc)
    assert status == 200, body
    assert list(_outputs(body)) == ["OUT_FP64"]


async def test_parameters_and_vmodel_metadata_reach_the_runtime(triton_url, http):
    # Triton takes int64, double, bool and string parameters (uint64: see the next test).
    params = {"str": "text", "int": -7, "big": 2**63 - 1, "flag": True, "ratio": 0.25}
    doc = {"parameters": params, "inputs": [{"name": "IN_INT8", "datatype": "INT8", "shape": [1, 1], "data": [1]}]}
    status, _, body = await _infer(http, triton_url, "echo", doc)
    assert status == 200, body
    seen = orjson.loads(_outputs(body)["PARAMS"]["data"][0])
    # Triton forwards the `mm-*` gRPC headers into the parameters (see the fixture).
    assert seen.pop("mm-vmodel-id") == "echo"
    assert seen == params


async def test_parameter_the_runtime_refuses_is_400(triton_url, http):
    doc = {"parameters": {"huge": 2**63 + 1},  # sent as uint64_param
           "inputs": [{"name": "IN_INT8", "datatype": "INT8", "shape": [1, 1], "data": [1]}]}
    status, _, body = await _infer(http, triton_url, "echo", doc)
    assert status == 400
    assert "'huge'" in orjson.loads(body)["error"]


async def test_binary_inputs_mixed_with_json(triton_url, http):
    fp32 = [1.0, -2.5, 3.25, 0.0]
    strings = [b"raw\x00bytes", b"\xff\xfe"]
    raw_fp32 = struct.pack("<4f", *fp32)
    raw_bytes = pack_bytes_elements(strings)
    header = orjson.dumps({"inputs": [
        {"name": "IN_FP32", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": len(raw_fp32)}},
        {"name": "IN_INT16", "datatype": "INT16", "shape": [1, 2], "data": [[5, -5]]},
        {"name": "IN_BYTES", "datatype": "BYTES", "shape": [1, 2], "parameters": {"binary_data_size": len(raw_bytes)}},
    ], "outputs": [{"name": "OUT_FP32"}, {"name": "OUT_INT16"}, {"name": "OUT_BYTES", "parameters": {"binary_data": True}},
                   {"name": "PARAMS"}]})
    async with http.post(f"{triton_url}/v2/models/echo/infer", data=header + raw_fp32 + raw_bytes,
                         headers={HEADER: str(len(header)), "Content-Type": "application/octet-stream"}) as r:
        assert r.status == 200, await r.text()
        json_len = int(r.headers[HEADER])
        body = await r.read()
    outs = _outputs(body[:json_len])
    assert outs["OUT_FP32"]["data"] == fp32
    assert outs["OUT_INT16"]["data"] == [5, -5]
    # Non-UTF-8 bytes survive exactly when the client asks for the output as binary.
    assert "data" not in outs["OUT_BYTES"]
    assert outs["OUT_BYTES"]["parameters"] == {"binary_data_size": len(raw_bytes)}
    assert body[json_len:] == raw_bytes
    # The HTTP-only binary_data_size parameters were not forwarded to the model.
    assert "binary_data_size" not in outs["PARAMS"]["data"][0]


async def test_binary_outputs_by_request_parameter(triton_url, http):
    doc = {"parameters": {"binary_data_output": True},
           "inputs": [{"name": "IN_UINT16", "datatype": "UINT16", "shape": [1, 3], "data": [1, 2, 65535]},
                      {"name": "IN_FP16", "datatype": "FP16", "shape": [1, 2], "data": [0.5, -4.0]}],
           "outputs": [{"name": "OUT_UINT16"}, {"name": "OUT_FP16", "parameters": {"binary_data": False}},
                       {"name": "PARAMS"}]}
    status, headers, body = await _infer(http, triton_url, "echo", doc)
    assert status == 200, body
    assert headers["Content-Type"] == "application/octet-stream"
    json_len = int(headers[HEADER])
    outs = orjson.loads(body[:json_len])["outputs"]
    binary = body[json_len:]
    offset = 0
    for out in outs:  # binary outputs follow the JSON in output order
        if out["name"] == "OUT_FP16":
            assert out["data"] == [0.5, -4.0]
            continue
        size = out["parameters"]["binary_data_size"]
        chunk, offset = binary[offset:offset + size], offset + size
        if out["name"] == "OUT_UINT16":
            assert struct.unpack("<3H", chunk) == (1, 2, 65535)
        else:
            assert b"binary_data_output" not in chunk  # the HTTP-only parameter stayed here
    assert offset == len(binary)


async def test_doubler_by_version_path(triton_url, http):
    doc = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [3], "data": [1, 2.5, -3]}]}
    status, _, body = await _infer(http, triton_url, "doubler/versions/1", doc)
    assert status == 200, body
    assert _outputs(body)["OUTPUT0"]["data"] == [2.0, 5.0, -6.0]


async def test_health_and_server_metadata(triton_url, http):
    async with http.get(f"{triton_url}/v2/health/live") as r:
        assert r.status == 200 and await r.json() == {"live": True}
    async with http.get(f"{triton_url}/v2/health/ready") as r:
        assert r.status == 200 and await r.json() == {"ready": True}
    async with http.get(f"{triton_url}/v2") as r:
        meta = await r.json()
        assert r.status == 200 and meta["name"] == "triton" and meta["version"]
        assert "model_repository" in meta["extensions"]


@pytest.mark.parametrize("path", ["echo", "echo/versions/1"])
async def test_model_metadata_and_ready(triton_url, http, path):
    async with http.get(f"{triton_url}/v2/models/{path}") as r:
        meta = await r.json()
        assert r.status == 200
    assert meta["name"] == "echo" and meta["versions"] == ["1"] and meta["platform"] == "python"
    assert {"name": "IN_FP16", "datatype": "FP16", "shape": [-1, -1]} in meta["inputs"]
    assert {"name": "PARAMS", "datatype": "BYTES", "shape": [1]} in meta["outputs"]
    async with http.get(f"{triton_url}/v2/models/{path}/ready") as r:
        assert r.status == 200 and await r.json() == {"name": "echo", "ready": True}


async def test_unknown_model_is_404(triton_url, http):
    doc = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1]}]}
    status, headers, body = await _infer(http, triton_url, "no-such-model", doc)
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert "no-such-model" in orjson.loads(body)["error"]
    async with http.get(f"{triton_url}/v2/models/no-such-model") as r:
        assert r.status == 404 and "error" in await r.json()
    async with http.get(f"{triton_url}/v2/models/no-such-model/ready") as r:
        assert r.status == 503 and await r.json() == {"name": "no-such-model", "ready": False}


@pytest.mark.parametrize("doc, fragment", [
    ({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [2], "data": [1, 2]}]}, "data-type"),
    ({"inputs": [{"name": "NOPE", "datatype": "FP32", "shape": [1], "data": [1]}]}, "NOPE"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}, "shape"),
])
async def test_runtime_rejections_are_400_with_its_message(triton_url, http, doc, fragment):
    status, _, body = await _infer(http, triton_url, "doubler", doc)
    assert status == 400, body
    assert fragment in orjson.loads(body)["error"]


async def test_unreachable_runtime_is_503(start_proxy, http):
    app = await start_proxy(free_port())  # nothing listens there
    url = f"http://127.0.0.1:{app.proxy.port}"
    doc = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1]}]}
    status, _, body = await _infer(http, url, "doubler", doc)
    assert status == 503 and orjson.loads(body)["error"]
    async with http.get(f"{url}/v2/health/live") as r:
        assert r.status == 503


async def test_client_deadline_is_forwarded(triton_url, http):
    url = f"{triton_url}/v2/models/sleeper/infer"

    def sleep_for(seconds):
        return {"inputs": [{"name": "SECONDS", "datatype": "FP32", "shape": [1], "data": [seconds]}]}

    async with http.post(url, json=sleep_for(0), headers={"Grpc-Timeout": "30S"}) as r:
        assert r.status == 200
    # The model takes 3 s; the client allows 300 ms: the gRPC call ends at the deadline (504).
    started = asyncio.get_running_loop().time()
    async with http.post(url, json=sleep_for(3), headers={"Grpc-Timeout": "300m"}) as r:
        assert r.status == 504 and "error" in await r.json()
    assert asyncio.get_running_loop().time() - started < 2.5
    async with http.post(url, json=sleep_for(0), headers={"Grpc-Timeout": "soon"}) as r:
        assert r.status == 400 and "Grpc-Timeout" in (await r.json())["error"]
