"""Hostile and malformed requests: each gets a clear `{"error": ...}` naming the field, with
the right status, and the proxy keeps serving afterwards."""

from __future__ import annotations

import asyncio
import struct

import orjson
import pytest

HEADER = "Inference-Header-Content-Length"
GOOD = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}


def _input(**fields) -> dict:
    return {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1, 2], **fields}]}


async def _post(http, url: str, body: bytes, model: str = "doubler", headers: dict | None = None):
    async with http.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


async def _assert_still_serving(http, url: str) -> None:
    status, _, body = await _post(http, url, orjson.dumps(GOOD))
    assert status == 200, body
    assert orjson.loads(body)["outputs"][0]["data"] == [2.0, 4.0]


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "malformed JSON"),
    (b"", "malformed JSON"),
    (b'{"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [NaN]}]}', "malformed JSON"),
    (b'{"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [Infinity]}]}', "malformed JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
    (b'"just a string"', "expected a JSON object"),
    (orjson.dumps({"inputs": []}), "inputs: expected a non-empty array"),
    (orjson.dumps({"inputs": {"INPUT0": [1]}}), "inputs: expected a non-empty array"),
    (orjson.dumps({"inputs": ["INPUT0"]}), "inputs[0]: expected a JSON object"),
    (orjson.dumps({"id": 7, **GOOD}), "id: expected a string"),
    (orjson.dumps(_input(name="")), "inputs[0].name"),
    (orjson.dumps(_input(datatype="FP8")), "inputs[0] (INPUT0).datatype: unknown datatype 'FP8'"),
    (orjson.dumps(_input(datatype=32)), "inputs[0] (INPUT0).datatype: unknown datatype 32"),
    (orjson.dumps(_input(shape="2")), "inputs[0] (INPUT0).shape: expected a list of non-negative integers"),
    (orjson.dumps(_input(shape=[-2])), "inputs[0] (INPUT0).shape"),
    (orjson.dumps(_input(shape=[2.0])), "inputs[0] (INPUT0).shape"),
    (orjson.dumps(_input(shape=[2**63])), "inputs[0] (INPUT0).shape"),
    (orjson.dumps(_input(data=[1, 2, 3])), "inputs[0] (INPUT0).data: 3 elements, shape [2] needs 2"),
    (orjson.dumps(_input(shape=[2, 3], data=[1, 2, 3, 4, 5])), "5 elements, shape [2, 3] needs 6"),
    (orjson.dumps(_input(shape=[2, 2], data=[[1, 2], [3]])), "at depth 1 expected arrays of 2 elements"),
    (orjson.dumps(_input(shape=[2], data=[[[1]], [[2]]])), "nested deeper than shape [2]"),
    (orjson.dumps(_input(data=[1, "2"])), "FP32 data [1] = '2': expected a number"),
    (orjson.dumps(_input(data=[1, None])), "FP32 data [1] = None: expected a number"),
    (orjson.dumps(_input(data=[1, {"v": 2}])), "expected a number"),
    (orjson.dumps(_input(data="12")), "inputs[0] (INPUT0).data: expected a JSON array"),
    (orjson.dumps(_input(data=[1e39, 0])), "out of range for FP32"),
    (orjson.dumps(_input(datatype="INT32", data=[1, 2.5])), "INT32 data [1] = 2.5: expected an integer"),
    (orjson.dumps(_input(datatype="UINT8", data=[1, 256])), "out of range for UINT8"),
    (orjson.dumps(_input(datatype="INT64", data=[1, 2**63])), "out of range for INT64"),
    (orjson.dumps(_input(datatype="BOOL", data=[True, 1])), "BOOL data [1] = 1: expected true or false"),
    (orjson.dumps(_input(datatype="BYTES", data=["a", 2])), "BYTES data [1] = 2: expected a string"),
    (orjson.dumps(_input(datatype="FP16", data=[1, 70000.0])), "out of range for FP16"),
    (orjson.dumps({k: v for k, v in _input().items()} | {"inputs": [{"name": "INPUT0", "datatype": "FP32",
                                                                       "shape": [2]}]}), "data: missing"),
    (orjson.dumps({"parameters": {"x": [1]}, **GOOD}), "parameters.x: expected a string, number or boolean"),
    (orjson.dumps({"parameters": "fast", **GOOD}), "parameters: expected a JSON object"),
    (orjson.dumps(_input(parameters={"p": None})), "inputs[0] (INPUT0).parameters.p"),
    (orjson.dumps({"outputs": {"name": "OUTPUT0"}, **GOOD}), "outputs: expected an array"),
    (orjson.dumps({"outputs": [{"name": 3}], **GOOD}), "outputs[0].name"),
    (orjson.dumps({"outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": "yes"}}], **GOOD}),
     "outputs[0].parameters.binary_data: expected true or false"),
])
async def test_bad_request_is_400_naming_the_field(triton_url, http, body, fragment):
    status, ctype, reply = await _post(http, triton_url, body)
    assert status == 400, reply
    assert ctype.startswith("application/json")
    assert fragment in orjson.loads(reply)["error"]


@pytest.mark.parametrize("header, tail, fragment", [
    ("abc", b"", f"{HEADER}: expected an integer"),
    ("999999", b"", f"{HEADER}: expected an integer"),
    ("-1", b"", f"{HEADER}: expected an integer"),
    (None, struct.pack("<2f", 1, 2) + b"!", "1 binary bytes after the JSON part are not claimed"),
    (None, struct.pack("<1f", 1), "binary_data_size 8 but only 4 binary bytes"),
])
async def test_bad_binary_extension_is_400(triton_url, http, header, tail, fragment):
    doc = orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2],
                                    "parameters": {"binary_data_size": 8}}]})
    status, _, reply = await _post(http, triton_url, doc + tail, headers={HEADER: header or str(len(doc))})
    assert status == 400, reply
    assert fragment in orjson.loads(reply)["error"]


@pytest.mark.parametrize("tensor, fragment", [
    ({"datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 8}}, "8 bytes, shape needs 3 x 4 = 12"),
    ({"datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 8}}, "BYTES element of 1000 bytes overruns"),
    ({"datatype": "FP32", "shape": [2], "data": [1, 2], "parameters": {"binary_data_size": 8}}, "both data and"),
    ({"datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": -8}}, "binary_data_size: expected a non-negative"),
])
async def test_binary_tensor_that_does_not_match_its_shape_is_400(triton_url, http, tensor, fragment):
    doc = orjson.dumps({"inputs": [{"name": "INPUT0", **tensor}]})
    raw = struct.pack("<I", 1000) + b"abcd"  # 8 bytes; as BYTES a length prefix that lies
    status, _, reply = await _post(http, triton_url, doc + raw, headers={HEADER: str(len(doc))})
    assert status == 400, reply
    assert fragment in orjson.loads(reply)["error"]


async def _raw_http(port: int, head: bytes, body_chunks, chunk_size: int = 1 << 20) -> bytes:
    """Send a request over a plain socket and return the status line and headers (+ body).

    Sending stops quietly when the proxy answers and closes early, which is what it should do.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        try:
            writer.write(head)
            for chunk in body_chunks:
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.ensure_future(send())
    try:
        reply = await asyncio.wait_for(reader.read(64 * 1024), 60)
    finally:
        sender.cancel()
        writer.close()
    return reply


def _status_and_json(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


async def test_100mb_body_with_content_length_is_413_before_reading(start_proxy, proxy_triton, http):
    app = await start_proxy(proxy_triton.grpc_port)  # default limit: 64 MiB
    size = 100 * 1024 * 1024
    head = (f"POST /v2/models/doubler/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode()
    # Only a few MB are offered: the answer must come from the header alone.
    reply = await _raw_http(app.proxy.port, head, (b" " * (1 << 20) for _ in range(4)))
    status, doc = _status_and_json(reply)
    assert status == 413
    assert "67108864" in doc["error"] and str(size) in doc["error"]
    await _assert_still_serving(http, f"http://127.0.0.1:{app.proxy.port}")


async def test_100mb_chunked_body_is_413(start_proxy, proxy_triton, http):
    app = await start_proxy(proxy_triton.grpc_port)
    head = (b"POST /v2/models/doubler/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    mb = b"[" + b"1," * ((1 << 20) // 2 - 1) + b"1"
    chunk = f"{len(mb):x}\r\n".encode() + mb + b"\r\n"
    reply = await _raw_http(app.proxy.port, head, (chunk for _ in range(100)))
    status, doc = _status_and_json(reply)
    assert status == 413
    assert "Maximum request body size 67108864 exceeded" in doc["error"]
    await _assert_still_serving(http, f"http://127.0.0.1:{app.proxy.port}")


async def test_small_limit_applies(start_proxy, proxy_triton, http):
    app = await start_proxy(proxy_triton.grpc_port, REST_PROXY_MAX_REQUEST_BYTES="1000")
    url = f"http://127.0.0.1:{app.proxy.port}"
    big = orjson.dumps(_input(shape=[400], data=[1.0] * 400))
    status, _, reply = await _post(http, url, big)
    assert status == 413 and "1000" in orjson.loads(reply)["error"]
    await _assert_still_serving(http, url)


async def test_non_ascii_model_name_is_400(triton_url, http):
    status, _, reply = await _post(http, triton_url, orjson.dumps(GOOD), model="d%C3%B6ubler")
    assert status == 400
    assert "printable ASCII" in orjson.loads(reply)["error"]


async def test_unknown_route_and_wrong_method_are_json_errors(triton_url, http):
    async with http.get(f"{triton_url}/v3/everything") as r:
        assert r.status == 404 and "error" in await r.json()
    async with http.get(f"{triton_url}/v2/models/doubler/infer") as r:
        assert r.status == 405 and "error" in await r.json()
        assert "POST" in r.headers["Allow"]


async def test_still_serving_after_hostile_requests(triton_url, http):
    for body in (b"[" * 50_000, b"{", orjson.dumps(_input(data=["x", "y"]))):
        status, _, _ = await _post(http, triton_url, body)
        assert status == 400
    await _assert_still_serving(http, triton_url)
