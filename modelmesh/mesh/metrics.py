"""The mesh's Prometheus metrics, named, typed and bucketed as the reference's (kserve/modelmesh
Metric.java / Metrics.java), so ModelMesh Serving's Grafana dashboard charts them unchanged:

- `modelmesh_api_request_milliseconds{method,code}`: every external request (inference and
  management API), with `modelmesh_request_size_bytes` / `modelmesh_response_size_bytes` for
  inference; `modelmesh_invoke_model_milliseconds{method,code}`: each call into the runtime
  (on the instance whose runtime serves it). `per_model_metrics=true` in MM_METRICS adds
  `modelId` and `vModelId` labels to these and to the other histograms.
- `modelmesh_loadmodel_failure` and `modelmesh_unloadmodel_failure` under exactly these names
  (the reference's Prometheus client adds no `_total`; prometheus_client always does for a
  counter, so they are monotonic gauges).
- Instance and cluster gauges are computed when scraped, so they are never stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge, Histogram

# The reference's buckets.
_MS = (.5, 1, 2, 5, 10, 20, 50, 75, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 60000, 120000, 300000)
_MIN_MS, _HOUR_MS, _DAY_MS = 60_000, 3_600_000, 86_400_000
_AGE_MS = (30_000, 5 * _MIN_MS, 15 * _MIN_MS, _HOUR_MS, 4 * _HOUR_MS, 12 * _HOUR_MS, _DAY_MS, 7 * _DAY_MS,
           30 * _DAY_MS, 90 * _DAY_MS)
_MODEL_BYTES = tuple(256 * 1024 * 4**i for i in range(8))
_MESSAGE_BYTES = tuple(128 * 4**i for i in range(8))

_MAX_METHOD_LABELS = 1000  # method names come from clients: beyond this many, "other"
_MAX_CACHED_CHILDREN = 100_000
_CLUSTER_COUNTS_TTL_S = 1.0


class ModelHistogram:
    """A histogram that carries `modelId` / `vModelId` labels when per-model metrics are on."""

    def __init__(self, name: str, doc: str, buckets: tuple, registry: CollectorRegistry, per_model: bool) -> None:
        self._per_model = per_model
        self._histogram = Histogram(name, doc, ["modelId", "vModelId"] if per_model else [], buckets=buckets,
                                    registry=registry)

    def observe(self, value: float, model_id: str = "", vmodel_id: str = "") -> None:
        if self._per_model:
            self._histogram.labels(model_id, vmodel_id).observe(value)
        else:
            self._histogram.observe(value)


class RequestMetrics:
    """Request histograms by method and status code (and model): label children are looked up
    once and cached, so a request costs dict lookups and the observations."""

    def __init__(self, registry: CollectorRegistry, per_model: bool, fq_names: bool) -> None:
        labels = ["method", "code", "modelId", "vModelId"] if per_model else ["method", "code"]
        self.per_model = per_model
        self._fq_names = fq_names
        self.api_ms = Histogram("modelmesh_api_request_milliseconds", "External request time", labels,
                                buckets=_MS, registry=registry)
        self.invoke_ms = Histogram("modelmesh_invoke_model_milliseconds", "Internal model server inference "
                                   "request time", labels, buckets=_MS, registry=registry)
        self.request_size = Histogram("modelmesh_request_size_bytes", "Inference request payload size", labels,
                                      buckets=_MESSAGE_BYTES, registry=registry)
        self.response_size = Histogram("modelmesh_response_size_bytes", "Inference response payload size", labels,
                                       buckets=_MESSAGE_BYTES, registry=registry)
        self._method_labels: dict[str, str] = {}
        self._api: dict[tuple, tuple] = {}
        self._api_time: dict[tuple[str, str], object] = {}
        self._invoke: dict[tuple, object] = {}

    def _method_label(self, method: str) -> str:
        label = self._method_labels.get(method)
        if label is None:
            if len(self._method_labels) >= _MAX_METHOD_LABELS:
                return "other"
            # "/inference.GRPCInferenceService/ModelInfer" -> "ModelInfer" (fq_names: the service too)
            name = method.lstrip("/")
            label = self._method_labels[method] = name if self._fq_names else name.rsplit("/", 1)[-1]
        return label

    def _labels(self, method: str, code: str, model_id: str, vmodel_id: str) -> tuple:
        if self.per_model:
            return self._method_label(method), code, model_id, vmodel_id
        return self._method_label(method), code

    def api(self, method: str, code: str, model_id: str = "", vmodel_id: str = "") -> tuple:
        """(time, request size, response size) children of an external request."""
        key = (method, code, model_id, vmodel_id) if self.per_model else (method, code)
        children = self._api.get(key)
        if children is None:
            labels = self._labels(method, code, model_id, vmodel_id)
            children = (self.api_ms.labels(*labels), self.request_size.labels(*labels),
                        self.response_size.labels(*labels))
            if len(self._api) < _MAX_CACHED_CHILDREN:
                self._api[key] = children
        return children

    def api_time(self, method: str, code: str):
        """The time child of an external request that carries no inference payload (management
        API, V2 server RPCs): no size series for it."""
        child = self._api_time.get((method, code))
        if child is None:
            child = self.api_ms.labels(*self._labels(method, code, "", ""))
            if len(self._api_time) < _MAX_CACHED_CHILDREN:
                self._api_time[(method, code)] = child
        return child

    def invoke(self, method: str, code: str, model_id: str = "", vmodel_id: str = ""):
        """The time child of a call into the runtime."""
        key = (method, code, model_id, vmodel_id) if self.per_model else (method, code)
        child = self._invoke.get(key)
        if child is None:
            child = self.invoke_ms.labels(*self._labels(method, code, model_id, vmodel_id))
            if len(self._invoke) < _MAX_CACHED_CHILDREN:
                self._invoke[key] = child
        return child


class InstanceState(Protocol):
    """What the instance gauges read (the local cache)."""

    published_capacity: int  # less the unload buffer
    models_used: int

    def __len__(self) -> int: ...

    def lru_time(self) -> int: ...


class MeshMetrics:
    def __init__(self, registry: CollectorRegistry, per_model: bool = False, fq_names: bool = False) -> None:
        r = registry
        self.requests = RequestMetrics(r, per_model, fq_names)

        def model_histogram(name: str, doc: str, buckets: tuple) -> ModelHistogram:
            return ModelHistogram(name, doc, buckets, r, per_model)

        self.cache_miss_ms = model_histogram("modelmesh_cache_miss_milliseconds", "Cache miss delay", _MS)
        self.load_ms = model_histogram("modelmesh_loadmodel_milliseconds", "Time taken to load model", _MS)
        self.unload_ms = model_histogram("modelmesh_unloadmodel_milliseconds", "Time taken to unload model", _MS)
        self.req_queue_delay = model_histogram("modelmesh_req_queue_delay_milliseconds",
                                               "Time spent in inference request queue", _MS)
        self.loading_queue_delay = model_histogram("modelmesh_loading_queue_delay_milliseconds",
                                                   "Time spent in model loading queue", _MS)
        self.sizing_ms = model_histogram("modelmesh_model_sizing_milliseconds", "Time taken to perform model sizing",
                                         _MS)
        self.age_at_eviction = model_histogram("modelmesh_age_at_eviction_milliseconds",
                                               "Time since model was last used when evicted", _AGE_MS)
        self.loaded_size = model_histogram("modelmesh_loaded_model_size_bytes", "Reported size of loaded model",
                                           _MODEL_BYTES)
        self.load_failures = Gauge("modelmesh_loadmodel_failure", "Model load failures (a counter)", registry=r)
        self.unload_failures = Gauge("modelmesh_unloadmodel_failure", "Unload model failures (a counter)",
                                     registry=r)
        # Cluster-wide (the reference publishes them from its leader; each instance here, same values).
        self.models_loaded = Gauge("modelmesh_models_loaded_total",
                                   "Total number of models with at least one loaded copy", registry=r)
        self.models_with_failure = Gauge("modelmesh_models_with_failure_total",
                                         "Total number of models with one or more recent load failures", registry=r)
        self.models_managed = Gauge("modelmesh_models_managed_total", "Total number of models managed", registry=r)
        # This instance.
        self.lru_seconds = Gauge("modelmesh_instance_lru_seconds", "Last used time of least recently used model in "
                                 "pod (in secs since epoch)", registry=r)
        self.lru_age_seconds = Gauge("modelmesh_instance_lru_age_seconds", "Last used age of least recently used "
                                     "model in pod (secs ago)", registry=r)
        self.capacity_bytes = Gauge("modelmesh_instance_capacity_bytes", "Effective model capacity of pod",
                                    registry=r)
        self.used_bytes = Gauge("modelmesh_instance_used_bytes", "Amount of capacity currently in use by loaded "
                                "models", registry=r)
        self.used_bps = Gauge("modelmesh_instance_used_bps", "Amount of capacity used in basis points (100ths of "
                              "percent)", registry=r)
        self.models_total = Gauge("modelmesh_instance_models_total", "Number of model copies loaded in pod",
                                  registry=r)

    def track_instance(self, state: InstanceState) -> None:
        """Instance gauges read `state` when scraped."""

        def lru_s() -> float:
            return state.lru_time() / 1000

        def lru_age_s() -> float:
            lru = state.lru_time()
            return (time.time() * 1000 - lru) / 1000 if lru else 0

        self.capacity_bytes.set_function(lambda: state.published_capacity)
        self.used_bytes.set_function(lambda: state.models_used)
        self.used_bps.set_function(
            lambda: int(state.models_used * 10000 / state.published_capacity) if state.published_capacity else 0)
        self.models_total.set_function(lambda: len(state))
        self.lru_seconds.set_function(lru_s)
        self.lru_age_seconds.set_function(lru_age_s)

    def track_cluster(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        """Cluster gauges from `counts()` = (managed, loaded somewhere, with a recent failure),
        computed at most once a second however often /metrics is scraped."""
        cached: list = [0.0, (0, 0, 0)]

        def current() -> tuple[int, int, int]:
            now = time.monotonic()
            if now - cached[0] > _CLUSTER_COUNTS_TTL_S:
                cached[:] = [now, counts()]
            return cached[1]

        self.models_managed.set_function(lambda: current()[0])
        self.models_loaded.set_function(lambda: current()[1])
        self.models_with_failure.set_function(lambda: current()[2])
