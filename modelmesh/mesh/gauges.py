"""The instance gauges (modelmesh_instance_*, models loaded/managed), set from the cache and
the registry view."""

from __future__ import annotations

from collections.abc import Sized

from modelmesh.mesh.cache import LocalCache, now_ms
from modelmesh.mesh.metrics import MeshMetrics


def update_instance_gauges(metrics: MeshMetrics, cache: LocalCache, models: Sized) -> None:
    m = metrics
    m.capacity_bytes.set(cache.capacity)
    m.used_bytes.set(cache.used)
    m.used_bps.set(int(cache.used * 10000 / cache.capacity) if cache.capacity else 0)
    m.models_total.set(len(cache))
    m.models_loaded.set(len(cache.loaded_ids()))
    m.models_managed.set(len(models))
    lru = cache.lru_time()
    m.lru_seconds.set(lru / 1000)
    m.lru_age_seconds.set((now_ms() - lru) / 1000 if lru else 0)
