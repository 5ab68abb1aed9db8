"""ModelMesh Serving's Grafana dashboard (config/dashboard/ModelMeshMetricsDashboard.json in
kserve/modelmesh-serving) charts our /metrics unchanged.

PANELS lists, per panel of that dashboard, the series its PromQL queries read (with the label
matchers they use besides namespace/pod). After real use of a mesh instance - hits, cache
misses, an eviction, a failed load, a model sized after load, requests queued for a
concurrency slot - every one of them must be present with data, as Prometheus would need to
evaluate the panel's rate()/increase()/max() over it.
"""

import asyncio

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.mesh_client import model_info
from harness.process import wait_until
from modelmesh.protos import model_mesh_pb2 as pb

MB = 1_000_000

PANELS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "Global LRU age": [("modelmesh_instance_lru_age_seconds", {}), ("modelmesh_age_at_eviction_milliseconds_sum", {}),
                       ("modelmesh_age_at_eviction_milliseconds_count", {})],
    "Cluster capacity and utilization": [("modelmesh_instance_capacity_bytes", {}),
                                         ("modelmesh_instance_used_bytes", {})],
    "Model Counts": [("modelmesh_models_loaded_total", {}), ("modelmesh_models_managed_total", {}),
                     ("modelmesh_models_with_failure_total", {})],
    "Model Counts per Pod": [("modelmesh_instance_models_total", {})],
    "Inference API Request Rate": [("modelmesh_api_request_milliseconds_count", {}),
                                   ("modelmesh_invoke_model_milliseconds_count", {})],
    "Average Inference Request and Response Sizes": [
        ("modelmesh_request_size_bytes_sum", {}), ("modelmesh_request_size_bytes_count", {}),
        ("modelmesh_response_size_bytes_sum", {}), ("modelmesh_response_size_bytes_count", {})],
    "External Inference API Request Rate Per Pod": [("modelmesh_api_request_milliseconds_count", {})],
    "External Inference API Response Times by Pod (excluding errors)": [
        ("modelmesh_api_request_milliseconds_sum", {"code": "OK"}),
        ("modelmesh_api_request_milliseconds_count", {"code": "OK"})],
    "Internal Inference API Requests Rate Per Pod": [("modelmesh_invoke_model_milliseconds_count", {})],
    "Internal Inference API Response Time By Pod (excluding errors)": [
        ("modelmesh_invoke_model_milliseconds_sum", {"code": "OK"}),
        ("modelmesh_invoke_model_milliseconds_count", {"code": "OK"})],
    "Inference API Queue Delay Time By Pod": [("modelmesh_req_queue_delay_milliseconds_sum", {}),
                                              ("modelmesh_req_queue_delay_milliseconds_count", {})],
    "Cache Misses (per 10min)": [("modelmesh_cache_miss_milliseconds_count", {})],
    "Cache Miss Rate": [("modelmesh_cache_miss_milliseconds_count", {}),
                        ("modelmesh_api_request_milliseconds_count", {})],
    "Cache Miss Delay (average)": [("modelmesh_cache_miss_milliseconds_sum", {}),
                                   ("modelmesh_cache_miss_milliseconds_count", {})],
    "Model Loads/Unloads (per 5min)": [("modelmesh_loadmodel_milliseconds_count", {}),
                                       ("modelmesh_unloadmodel_milliseconds_count", {}),
                                       ("modelmesh_age_at_eviction_milliseconds_count", {}),
                                       ("modelmesh_loadmodel_failure", {})],
    "Loaded Model Sizes": [("modelmesh_loaded_model_size_bytes_sum", {}),
                           ("modelmesh_loaded_model_size_bytes_count", {})],
    "Model Loading Times": [("modelmesh_loadmodel_milliseconds_sum", {}), ("modelmesh_loadmodel_milliseconds_count", {}),
                            ("modelmesh_model_sizing_milliseconds_sum", {}),
                            ("modelmesh_model_sizing_milliseconds_count", {})],
}
# Gauges that may rightly read 0 (an instance whose LRU model was used this instant).
MAY_BE_ZERO = {"modelmesh_instance_lru_age_seconds"}


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def select(all_samples: list, name: str, matchers: dict[str, str]) -> list:
    return [s for s in all_samples if s.name == name and all(s.labels.get(k) == v for k, v in matchers.items())]


async def test_every_dashboard_query_has_data_after_real_use(etcd, nodes, client_for):
    # A mesh of its own (service name): the cluster counts below must not see other tests' models.
    # Room for 3 models of 1 MB beside the unload buffer (41 x 8 KiB).
    node = nodes(etcd, "dash", capacity=3_400_000, limit_concurrency=True, mesh_env={"MM_SERVICE_NAME": "dashboard"})
    c = client_for(node)
    for mid in ("d1", "d2", "d3", "d4"):
        await c.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info(max_concurrency=1)))
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="d-bad", modelInfo=model_info(fail="no such file")))
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="d-sized", modelInfo=model_info(size=0)))

    await c.infer("d1")
    # Instance gauges are current at once, not at the next janitor pass.
    now = samples(node.mesh.metrics_text())
    assert [s.value for s in select(now, "modelmesh_instance_models_total", {})] == [1]
    assert [s.value for s in select(now, "modelmesh_instance_used_bytes", {})] == [MB]

    # Concurrent requests on a copy that takes one at a time: some wait for the slot.
    await asyncio.gather(*(c.infer("d1") for _ in range(8)))
    for mid in ("d2", "d3", "d4", "d-sized"):  # a full instance: loading d4 evicts the least recently used
        await c.infer(mid)
    with pytest.raises(grpc.aio.AioRpcError):
        await c.infer("d-bad")

    # Cluster counts follow the registry (its watch) within seconds. One instance: models loaded
    # somewhere = its copies (how many it holds depends on what the failed load made room for).
    def cluster_counts_match() -> bool:
        got = samples(node.mesh.metrics_text())
        managed, loaded, failing, copies = (select(got, name, {})[0].value for name in (
            "modelmesh_models_managed_total", "modelmesh_models_loaded_total", "modelmesh_models_with_failure_total",
            "modelmesh_instance_models_total"))
        return (managed, failing) == (6, 1) and loaded == copies >= 2

    wait_until(cluster_counts_match, timeout=10, what="cluster gauges: 6 managed, 1 failing, loaded = copies")

    after = samples(node.mesh.metrics_text())
    empty = []
    for panel, series in PANELS.items():
        for name, matchers in series:
            found = select(after, name, matchers)
            if not found or (name not in MAY_BE_ZERO and sum(s.value for s in found) <= 0):
                empty.append(f"{panel}: {name}{matchers or ''}")
    assert not empty, "dashboard series without data:\n" + "\n".join(empty)
    # The reference's meanings: failures by exactly that name; loaded/managed/failing models.
    assert [s.value for s in select(after, "modelmesh_loadmodel_failure", {})] == [1]
    assert sum(s.value for s in select(after, "modelmesh_api_request_milliseconds_count",
                                       {"method": "ModelInfer"})) == 14


async def test_per_model_metrics_label_requests_and_loads(etcd, nodes, client_for):
    node = nodes(etcd, "dash-per-model", mesh_env={"MM_METRICS": "prometheus:port={port};scheme=http;"
                                                                 "per_model_metrics=true"})
    c = client_for(node)
    await c.mesh.setVModel(pb.SetVModelRequest(vModelId="pm-v", targetModelId="pm-m", modelInfo=model_info()))
    await c.infer("pm-v", vmodel=True)
    await c.infer("pm-m")
    got = samples(node.mesh.metrics_text())
    api = {(s.labels["modelId"], s.labels["vModelId"]): s.value
           for s in select(got, "modelmesh_api_request_milliseconds_count", {"method": "ModelInfer", "code": "OK"})}
    assert api == {("pm-m", "pm-v"): 1, ("pm-m", ""): 1}
    invoke = select(got, "modelmesh_invoke_model_milliseconds_count", {"method": "ModelInfer", "modelId": "pm-m"})
    assert sum(s.value for s in invoke) == 2
    assert [s.value for s in select(got, "modelmesh_loadmodel_milliseconds_count", {"modelId": "pm-m"})] == [1]
    assert select(got, "modelmesh_request_size_bytes_count", {"modelId": "pm-m", "vModelId": "pm-v"})
