"""The REST proxy in front of a real MLServer (sklearn iris): inference with nested and flat
data, metadata, readiness, response parameters and error mapping."""

from __future__ import annotations

import orjson
import pytest

from harness.models import IRIS_SAMPLES

ROWS = [x for x, _ in IRIS_SAMPLES]
CLASSES = [c for _, c in IRIS_SAMPLES]


async def _infer(http, url: str, model: str, doc: dict):
    async with http.post(f"{url}/v2/models/{model}/infer", data=orjson.dumps(doc)) as r:
        return r.status, orjson.loads(await r.read())


@pytest.mark.parametrize("data", [ROWS, [v for row in ROWS for v in row]], ids=["nested", "flat"])
async def test_iris_classifies(mlserver_url, http, iris_name, data):
    doc = {"id": "iris-1", "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [len(ROWS), 4], "data": data}]}
    status, reply = await _infer(http, mlserver_url, iris_name, doc)
    assert status == 200, reply
    assert reply["model_name"] == iris_name and reply["id"] == "iris-1"
    (out,) = reply["outputs"]
    assert out["datatype"] == "INT64" and out["shape"][0] == len(ROWS)
    assert out["data"] == CLASSES
    # MLServer annotates its outputs with a content_type parameter: response parameters pass.
    assert out["parameters"] == {"content_type": "np"}


async def test_iris_metadata_and_ready(mlserver_url, http, iris_name):
    async with http.get(f"{mlserver_url}/v2/models/{iris_name}") as r:
        assert r.status == 200
        assert (await r.json())["name"] == iris_name
    async with http.get(f"{mlserver_url}/v2/models/{iris_name}/ready") as r:
        assert r.status == 200 and (await r.json())["ready"] is True
    async with http.get(f"{mlserver_url}/v2/health/ready") as r:
        assert r.status == 200 and await r.json() == {"ready": True}
    async with http.get(f"{mlserver_url}/v2") as r:
        assert r.status == 200 and (await r.json())["name"] == "mlserver"


async def test_unknown_model(mlserver_url, http):
    doc = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": ROWS[0]}]}
    status, reply = await _infer(http, mlserver_url, "no-such-model", doc)
    assert status == 404, reply
    assert "no-such-model" in reply["error"]


async def test_model_error_keeps_the_runtime_message(mlserver_url, http, iris_name):
    doc = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}]}
    status, reply = await _infer(http, mlserver_url, iris_name, doc)
    # MLServer answers a failing model with gRPC UNKNOWN, which maps to 500.
    assert status == 500, reply
    assert reply["error"] == "X has 3 features, but LogisticRegression is expecting 4 features as input."
