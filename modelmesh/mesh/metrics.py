"""The mesh's Prometheus metrics, named as users' dashboards already query them (mesh.md).

Counters are exposed with prometheus_client's `_total` suffix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000)
_BYTES = tuple(2**i for i in range(8, 36, 2))
_AGE_MS = (1000, 10000, 60000, 300000, 900000, 3600000, 6 * 3600000, 24 * 3600000)


class MeshMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        req = ["method", "code"]
        self.invoke_ms = Histogram("modelmesh_invoke_model_milliseconds", "Inference request time", req,
                                   buckets=_MS, registry=r)
        self.api_ms = Histogram("modelmesh_api_request_milliseconds", "Management API request time", req,
                                buckets=_MS, registry=r)
        self.request_size = Histogram("modelmesh_request_size_bytes", "Inference request size", req,
                                      buckets=_BYTES, registry=r)
        self.response_size = Histogram("modelmesh_response_size_bytes", "Inference response size", req,
                                       buckets=_BYTES, registry=r)
        self.cache_miss_ms = Histogram("modelmesh_cache_miss_milliseconds", "Delay of requests that had to wait "
                                       "for a load", buckets=_MS, registry=r)
        self.load_ms = Histogram("modelmesh_loadmodel_milliseconds", "Model load time", buckets=_MS, registry=r)
        self.load_failures = Counter("modelmesh_loadmodel_failure", "Model load failures", registry=r)
        self.unload_ms = Histogram("modelmesh_unloadmodel_milliseconds", "Model unload time", buckets=_MS,
                                   registry=r)
        self.unload_failures = Counter("modelmesh_unloadmodel_failure", "Model unload failures", registry=r)
        self.req_queue_delay = Histogram("modelmesh_req_queue_delay_milliseconds", "Time a request waited for a "
                                         "concurrency slot", buckets=_MS, registry=r)
        self.loading_queue_delay = Histogram("modelmesh_loading_queue_delay_milliseconds", "Time a load waited "
                                             "for a loading slot", buckets=_MS, registry=r)
        self.sizing_ms = Histogram("modelmesh_model_sizing_milliseconds", "modelSize call time", buckets=_MS,
                                   registry=r)
        self.age_at_eviction = Histogram("modelmesh_age_at_eviction_milliseconds", "Time since last use of "
                                         "evicted models", buckets=_AGE_MS, registry=r)
        self.loaded_size = Histogram("modelmesh_loaded_model_size_bytes", "Sizes of loaded models",
                                     buckets=_BYTES, registry=r)
        self.models_loaded = Gauge("modelmesh_models_loaded_total", "Models loaded on this instance", registry=r)
        self.models_with_failure = Gauge("modelmesh_models_with_failure_total", "Registered models with a recent "
                                         "load failure", registry=r)
        self.models_managed = Gauge("modelmesh_models_managed_total", "Registered models", registry=r)
        self.lru_seconds = Gauge("modelmesh_instance_lru_seconds", "Last-used time of this instance's least "
                                 "recently used model (epoch s)", registry=r)
        self.lru_age_seconds = Gauge("modelmesh_instance_lru_age_seconds", "Age of this instance's least "
                                     "recently used model", registry=r)
        self.capacity_bytes = Gauge("modelmesh_instance_capacity_bytes", "Model capacity of this instance",
                                    registry=r)
        self.used_bytes = Gauge("modelmesh_instance_used_bytes", "Model bytes held by this instance", registry=r)
        self.used_bps = Gauge("modelmesh_instance_used_bps", "Used capacity in basis points", registry=r)
        self.models_total = Gauge("modelmesh_instance_models_total", "Copies held by this instance", registry=r)
