"""The mesh's coordination records, stored as JSON in the KV store.

Field names follow the reference layout (mesh.md "Coordination data") so that
`etcdctl get --prefix <root>/mm/<service>/registry/` reads the same; fields we add are
marked. Records are immutable: an update builds a new record and compare-and-swaps it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

SIZE_UNIT = 8192  # the reference stores instance capacity/used in 8 KiB units
NO_INSTANCE = "-"  # failed_in key for "no instance could take the load" (not a real instance)


def _compact(d: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in d.items() if v not in (None, "", {}, [], 0, False) or k in _KEEP})


_KEEP = {"type"}


def _without(d: dict, keys: set[str] | frozenset[str]) -> dict:
    return {k: v for k, v in d.items() if k not in keys} if keys & d.keys() else d


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A registered concrete model (registry table)."""

    type: str
    path: str = ""
    key: str = ""
    # instance id -> epoch ms the copy finished loading (copies that serve).
    instance_ids: dict[str, int] = field(default_factory=dict)
    # ours: instance id -> epoch ms a load started there (copies being loaded).
    loading_in: dict[str, int] = field(default_factory=dict)
    # instance id -> epoch ms of a load failure there.
    failed_in: dict[str, int] = field(default_factory=dict)
    # ours: last load failure message per instance (shown as LOADING_FAILED errors).
    fail_msgs: dict[str, str] = field(default_factory=dict)
    auto_delete: bool = False
    last_used: int = 0  # epoch ms
    registered: int = 0  # ours: epoch ms of registration
    # ours: vmodel id -> epoch ms a setVModel pointed it here. Written before the vmodel
    # record, so an unregister (a compare-and-delete of this record) cannot miss a vmodel
    # that another instance is setting up right now.
    vrefs: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return _compact({
            "type": self.type, "mPath": self.path, "encKey": self.key, "instanceIds": self.instance_ids,
            "loadingIn": self.loading_in, "failedIn": self.failed_in, "failMsgs": self.fail_msgs,
            "fails": len(self.failed_in), "autoDel": self.auto_delete, "lu": self.last_used,
            "reg": self.registered, "refs": len(self.vrefs), "vrefs": self.vrefs,
        })

    @classmethod
    def from_json(cls, raw: bytes) -> "ModelRecord":
        d = orjson.loads(raw)
        return cls(
            type=d.get("type", ""), path=d.get("mPath", ""), key=d.get("encKey", ""),
            instance_ids={k: int(v) for k, v in (d.get("instanceIds") or {}).items()},
            loading_in={k: int(v) for k, v in (d.get("loadingIn") or {}).items()},
            failed_in={k: int(v) for k, v in (d.get("failedIn") or {}).items()},
            fail_msgs=dict(d.get("failMsgs") or {}),
            auto_delete=bool(d.get("autoDel", False)), last_used=int(d.get("lu", 0)),
            registered=int(d.get("reg", 0)),
            vrefs={k: int(v) for k, v in (d.get("vrefs") or {}).items()},
        )

    def same_info(self, type_: str, path: str, key: str) -> bool:
        return (self.type, self.path, self.key) == (type_, path, key)

    def replace(self, **changes: Any) -> "ModelRecord":
        return dataclasses.replace(self, **changes)

    def live_failures(self, now_ms: int, expiry_ms: int) -> dict[str, int]:
        return {i: t for i, t in self.failed_in.items() if now_ms - t < expiry_ms}

    def failed_instances(self, now_ms: int, expiry_ms: int) -> set[str]:
        """Instances where a load failed recently (not the NO_INSTANCE marker)."""
        return {i for i in self.live_failures(now_ms, expiry_ms) if i != NO_INSTANCE}

    # --- state changes (each returns a new record) ---------------------------------------

    def loading_on(self, instance: str, at_ms: int) -> "ModelRecord":
        """A load of a copy was claimed for `instance`."""
        return self.replace(loading_in={**self.loading_in, instance: at_ms})

    def loaded_on(self, instance: str, at_ms: int) -> "ModelRecord":
        """A copy finished loading on `instance` (any earlier failure there is void)."""
        return self.replace(instance_ids={**self.instance_ids, instance: at_ms},
                            loading_in=_without(self.loading_in, {instance}),
                            failed_in=_without(self.failed_in, {instance}),
                            fail_msgs=_without(self.fail_msgs, {instance}))

    def failed_on(self, instance: str, at_ms: int, message: str) -> "ModelRecord":
        """A load failed on `instance` (or `-`: no instance could take it)."""
        return self.replace(loading_in=_without(self.loading_in, {instance}),
                            failed_in={**self.failed_in, instance: at_ms},
                            fail_msgs={**self.fail_msgs, instance: message})

    def without_copies_on(self, instances: set[str] | frozenset[str]) -> "ModelRecord":
        """No copy (loaded or loading) on these instances any more."""
        return self.replace(instance_ids=_without(self.instance_ids, instances),
                            loading_in=_without(self.loading_in, instances))

    def referenced_by(self, vmodel_id: str, at_ms: int) -> "ModelRecord":
        """A setVModel points `vmodel_id` at this model (the time is refreshed each time)."""
        return self.replace(vrefs={**self.vrefs, vmodel_id: at_ms})

    def without_failure_on(self, instance: str) -> "ModelRecord":
        return self.replace(failed_in=_without(self.failed_in, {instance}),
                            fail_msgs=_without(self.fail_msgs, {instance}))


@dataclass(frozen=True, slots=True)
class VModelRecord:
    """A virtual model: an alias that moves from an active to a target model."""

    owner: str = ""
    active_model: str = ""
    target_model: str = ""
    failed: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps({"o": self.owner, "amid": self.active_model, "tmid": self.target_model,
                             "failed": self.failed})

    @classmethod
    def from_json(cls, raw: bytes) -> "VModelRecord":
        d = orjson.loads(raw)
        return cls(owner=d.get("o", ""), active_model=d.get("amid", ""), target_model=d.get("tmid", ""),
                   failed=bool(d.get("failed", False)))

    @property
    def transitioning(self) -> bool:
        return bool(self.target_model) and self.target_model != self.active_model

    def replace(self, **changes: Any) -> "VModelRecord":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """A live mesh instance (instances table, written under the instance's lease)."""

    endpoint: str  # ours: host:port peers forward to
    capacity_bytes: int = 0
    used_bytes: int = 0
    model_count: int = 0
    lru_time: int = 0  # epoch ms of the least recently used loaded model (0 = empty)
    loading_threads: int = 1
    loading_in_progress: int = 0
    rpm: int = 0
    shutting_down: bool = False
    start_time: int = 0
    version: str = ""
    location: str = ""
    zone: str = ""
    labels: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        return orjson.dumps({
            "ep": self.endpoint, "cap": self.capacity_bytes // SIZE_UNIT, "used": self.used_bytes // SIZE_UNIT,
            "capB": self.capacity_bytes, "usedB": self.used_bytes, "count": self.model_count,
            "lruTime": self.lru_time, "lThreads": self.loading_threads, "lInProg": self.loading_in_progress,
            "rpm": self.rpm, "shutdown": self.shutting_down, "startTime": self.start_time, "vers": self.version,
            "loc": self.location, "zone": self.zone, "labels": list(self.labels),
        })

    @classmethod
    def from_json(cls, raw: bytes) -> "InstanceRecord":
        d = orjson.loads(raw)
        return cls(
            endpoint=d.get("ep", ""),
            capacity_bytes=int(d.get("capB", int(d.get("cap", 0)) * SIZE_UNIT)),
            used_bytes=int(d.get("usedB", int(d.get("used", 0)) * SIZE_UNIT)),
            model_count=int(d.get("count", 0)), lru_time=int(d.get("lruTime", 0)),
            loading_threads=int(d.get("lThreads", 1)), loading_in_progress=int(d.get("lInProg", 0)),
            rpm=int(d.get("rpm", 0)), shutting_down=bool(d.get("shutdown", False)),
            start_time=int(d.get("startTime", 0)), version=str(d.get("vers", "")),
            location=d.get("loc", ""), zone=d.get("zone", ""), labels=tuple(d.get("labels") or ()),
        )

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes)

    def replace(self, **changes: Any) -> "InstanceRecord":
        return dataclasses.replace(self, **changes)
