"""Leaving the mesh gracefully: the hand-off of models in use to other instances before this
one exits (mesh.md: on SIGTERM, models used in the last hour are handed off)."""

from __future__ import annotations

import time

from modelmesh.mesh.cache import LocalCache, now_ms
from modelmesh.mesh.cluster import ClusterView
from modelmesh.mesh.coordinator import LoadCoordinator
from modelmesh.mesh.records import ModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.shutdown")

HANDOFF_RECENT_MS = 3600 * 1000  # models used in the last hour are handed off


async def hand_off(instance_id: str, cache: LocalCache, models: Table[ModelRecord], cluster: ClusterView,
                   coordinator: LoadCoordinator, deadline: float) -> int:
    """Ask other instances to load the recently used models only this instance holds, and wait
    (until `deadline`, a time.monotonic() value) for them to hold a copy. Returns how many
    models were handed off."""
    now = now_ms()
    recent = [c.model_id for c in cache.copies() if c.serving and now - c.last_used < HANDOFF_RECENT_MS]
    pending = []
    for model_id in recent:
        record = models.get(model_id)
        if record is None:
            continue
        others = [i for i in cluster.live_holders(record) if i != instance_id]
        if not others and await coordinator.add_copy_elsewhere(model_id):
            pending.append(model_id)
    for model_id in pending:
        remaining = deadline - time.monotonic() - 2
        if remaining <= 0:
            break
        await models.wait_for(
            model_id, lambda r: r is None or any(i != instance_id for i in r.instance_ids if i in cluster.live()),
            remaining)
    log.info("hand-off done", models=len(pending))
    return len(pending)
