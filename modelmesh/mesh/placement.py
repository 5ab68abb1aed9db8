"""Where to load a model that no live instance holds (a cache miss)."""

from __future__ import annotations

from collections.abc import Mapping

from modelmesh.mesh.constraints import TypeConstraints
from modelmesh.mesh.records import InstanceRecord

MAX_FAILED_INSTANCES = 3  # a load is tried on at most this many instances (the reference's rule)


def eligible_instances(
    model_type: str,
    instances: Mapping[str, InstanceRecord],
    constraints: TypeConstraints,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> dict[str, InstanceRecord]:
    """Instances whose labels satisfy the type's constraints and that take new loads."""
    return {
        iid: inst for iid, inst in instances.items()
        if iid not in exclude and not inst.shutting_down and constraints.accepts(model_type, frozenset(inst.labels))
    }


def choose_instance(
    model_type: str,
    size_hint: int,
    instances: Mapping[str, InstanceRecord],
    constraints: TypeConstraints,
    self_id: str,
    exclude: set[str] | frozenset[str] = frozenset(),
    prefer_local: bool = True,
) -> str | None:
    """Pick the instance that should load a model.

    First choice: an instance with free room for `size_hint`, preferring preferred labels,
    then this instance (no extra hop), then the fewest loads in progress, then most room.
    Otherwise: the instance whose least recently used model is oldest, i.e. whose eviction
    costs the least. None when no instance qualifies.
    """
    candidates = eligible_instances(model_type, instances, constraints, exclude)
    if not candidates:
        return None

    def local_rank(iid: str) -> int:
        return 0 if (prefer_local and iid == self_id) else 1

    with_room = [iid for iid, inst in candidates.items() if inst.free_bytes >= size_hint]
    if with_room:
        return min(with_room, key=lambda iid: (
            -constraints.preference(model_type, frozenset(candidates[iid].labels)), local_rank(iid),
            candidates[iid].loading_in_progress, -candidates[iid].free_bytes, iid))
    return min(candidates, key=lambda iid: (
        -constraints.preference(model_type, frozenset(candidates[iid].labels)),
        candidates[iid].lru_time or 2**62, local_rank(iid), iid))
