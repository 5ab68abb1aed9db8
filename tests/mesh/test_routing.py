"""Routing rules: id extraction (data-plane config), id injection, method gating,
multi-model requests, response metadata, metrics."""

import json
import time

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.mesh_client import infer_request, model_info
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb

DATAPLANE = json.dumps({"rpcConfigs": {
    "inference.GRPCInferenceService/ModelInfer": {"idExtractionPath": [1], "vModelId": True},
}, "allowOtherRpcs": False})


async def test_vmodel_id_extracted_from_the_request_body(etcd, nodes, client_for):
    node = nodes(etcd, "dp", mesh_env={"MM_DATAPLANE_CONFIG": DATAPLANE})
    c = client_for(node)
    await c.mesh.setVModel(pb.SetVModelRequest(vModelId="isvc-a", targetModelId="isvc-a__isvc-1234", owner="isvc",
                                               modelInfo=model_info(), autoDeleteTargetModel=True, sync=True))
    req = infer_request()
    req.model_name = "isvc-a"  # as any KServe V2 client sends it: no mesh headers
    call = c.v2.ModelInfer(req, timeout=30)
    resp = await call
    # The concrete id replaced the vmodel name in field 1, and came back in the headers.
    assert resp.model_name == "isvc-a__isvc-1234"
    assert dict(await call.initial_metadata())["mm-model-id"] == "isvc-a__isvc-1234"
    # An id in the body wins over a header; an empty body field falls back to the header.
    resp = await c.v2.ModelInfer(req, metadata=[("mm-vmodel-id", "other")], timeout=30)
    assert resp.model_name == "isvc-a__isvc-1234"
    req.model_name = ""
    resp = await c.v2.ModelInfer(req, metadata=[("mm-vmodel-id", "isvc-a")], timeout=30)
    assert resp.model_name == "isvc-a__isvc-1234"
    # A body that is not protobuf, for a method with an extraction rule: a clear error.
    raw = c.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(b"\x0a\xff\xff\xff", timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model id" in e.value.details()
    # Methods outside rpcConfigs are refused when allowOtherRpcs is false.
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.v2.ModelMetadata(v2.ModelMetadataRequest(), metadata=[("mm-model-id", "isvc-a__isvc-1234")],
                                 timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_gating_and_errors(etcd, nodes, client_for):
    node = nodes(etcd, "gate")
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="g1", modelInfo=model_info()))
    # The runtime SPI is never reachable through the mesh.
    raw = c.channel.unary_unary("/mmesh.ModelRuntime/unloadModel")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(b"\x0a\x02g1", metadata=[("mm-model-id", "g1")], timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    req = infer_request()
    req.model_name = "client-sent-this"
    resp = await c.v2.ModelInfer(req, metadata=[("mm-model-id", "g1")], timeout=30)
    assert resp.model_name == "g1"  # injected id overwrote what the client sent


async def test_multi_model_request_concatenates_responses(etcd, nodes, client_for):
    node = nodes(etcd, "multi")
    c = client_for(node)
    for mid in ("mm-1", "mm-2"):
        await c.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info()))
    resp = await c.v2.ModelInfer(infer_request(), metadata=[("mm-model-id", "mm-1"), ("mm-model-id", "mm-2"),
                                                            ("mm-model-id", "missing")], timeout=30)
    # Two responses merged: repeated fields append (one output per model), scalars: last wins.
    assert len(resp.outputs) == 2 and len(resp.raw_output_contents) == 2
    assert resp.model_name == "mm-2"
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.v2.ModelInfer(infer_request(), metadata=[("mm-model-id", "x1"), ("mm-model-id", "x2")], timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


async def test_metrics_count_every_external_call(etcd, nodes, client_for):
    node = nodes(etcd, "metrics")
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="mx", modelInfo=model_info()))
    for _ in range(3):
        await c.infer("mx")
    with pytest.raises(grpc.aio.AioRpcError):
        await c.infer("unknown-model")
    families = {f.name: f for f in text_string_to_metric_families(node.mesh.metrics_text())}
    # Every external request, inference included, is an api_request; each call into the runtime an invoke_model.
    invoke = {(s.labels["method"], s.labels["code"]): s.value for s in families["modelmesh_invoke_model_milliseconds"].samples
              if s.name.endswith("_count")}
    assert invoke == {("ModelInfer", "OK"): 3}
    api = {(s.labels["method"], s.labels["code"]): s.value for s in families["modelmesh_api_request_milliseconds"].samples
           if s.name.endswith("_count")}
    assert api == {("registerModel", "OK"): 1, ("ModelInfer", "OK"): 3, ("ModelInfer", "NOT_FOUND"): 1}
    loads = [s.value for s in families["modelmesh_loadmodel_milliseconds"].samples if s.name.endswith("_count")]
    assert loads == [1]
    # The model capacity: the runtime's, less the reference's unload buffer (4 loading x 1 MB / 4, in 8 KiB units).
    assert families["modelmesh_instance_capacity_bytes"].samples[0].value == 100_000_000 - 123 * 8192
    for name in ("modelmesh_cache_miss_milliseconds", "modelmesh_models_loaded_total", "modelmesh_instance_used_bytes",
                 "modelmesh_request_size_bytes", "modelmesh_response_size_bytes", "modelmesh_loadmodel_failure",
                 "modelmesh_age_at_eviction_milliseconds", "modelmesh_instance_lru_age_seconds"):
        assert name in families, name


def _etcd_calls(etcd) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"{etcd.endpoint}/metrics", timeout=5) as r:
        text = r.read().decode()
    calls: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "grpc_server_handled":
            for s in family.samples:
                if s.labels.get("grpc_service") == "etcdserverpb.KV":
                    calls[s.labels["grpc_method"]] = calls.get(s.labels["grpc_method"], 0) + s.value
    return calls


async def test_hits_never_touch_etcd(private_etcd, nodes, client_for):
    etcd = private_etcd  # our own: nothing else talks to it
    # No janitor sweep (its leader-latch swap) and no scale-up in the window: what is left
    # of the upkeep is the instance record, published at most once a second when it changed.
    env = {"MM_JANITOR_FREQ_SECS": "3600", "MM_SCALEUP_RPM_THRESHOLD": "100000000"}
    a, b = nodes(etcd, "hot-path-a", mesh_env=env), nodes(etcd, "hot-path-b", mesh_env=env)
    ca, cb = client_for(a), client_for(b)
    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="hp", modelInfo=model_info()))
    await ca.infer("hp")
    await cb.infer("hp")  # b learns where the copy is
    before = _etcd_calls(etcd)
    started = time.monotonic()
    for _ in range(100):
        await ca.infer("hp")  # local hit
        await cb.infer("hp")  # forwarded to a's copy
    elapsed = time.monotonic() - started
    after = _etcd_calls(etcd)
    calls = {m: after.get(m, 0) - before.get(m, 0) for m in set(after) | set(before)}
    # 200 requests: not one read, not one compare-and-swap (registry writes are Txns).
    assert calls.get("Range", 0) == 0, calls
    assert calls.get("Txn", 0) == 0, calls
    assert calls.get("DeleteRange", 0) == 0, calls
    # Puts are the two instance records only, at most one each per second of the window.
    assert calls.get("Put", 0) <= 2 * (int(elapsed) + 2), (calls, elapsed)
