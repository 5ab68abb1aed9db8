"""The coordination-store interface the mesh (and local mode) is written against.

Two backends implement it: etcd (aetcd; production) and an embedded in-process store
persisted to a file (`modelmesh local`). Keys are str, values bytes. Every record update in
the mesh is a compare-and-swap on the key's mod revision, so lost updates cannot happen.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int  # revision of the last write of this key (the CAS token)
    create_revision: int = 0
    lease: int = 0


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: bytes  # empty for DELETE
    mod_revision: int  # revision of this event


class StoreUnavailable(ConnectionError):
    """The store cannot be reached right now (callers keep serving from memory and retry)."""


class LeaseLost(RuntimeError):
    """A lease expired or was revoked; keys written under it are gone."""


class StoreError(RuntimeError):
    """The store rejected a request for a reason other than being unreachable (bad request,
    permission denied, authentication failed); retrying the same request will not help."""


class WatchCompacted(RuntimeError):
    """A watch asked for history the store no longer keeps (etcd compaction, or an embedded
    store restart). The watch iterator raises it and ends; the consumer must re-list the
    prefix (`get_prefix`) and watch again from the returned revision + 1, treating the fresh
    listing as the whole truth (keys missing from it were deleted meanwhile)."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch history compacted up to revision {compact_revision}")
        self.compact_revision = compact_revision


class Lease(Protocol):
    id: int
    ttl_s: int

    async def revoke(self) -> None: ...

    @property
    def lost(self) -> bool: ...


class KVStore(Protocol):
    # etcd_connection's root_prefix ("" for the embedded store); the mesh builds its key
    # prefix from it with kv.config.mesh_key_prefix.
    root_prefix: str

    async def revision(self) -> int:
        """The store's current revision; also a cheap reachability check."""
        ...

    async def get(self, key: str) -> KeyValue | None: ...

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under `prefix`, sorted by key, and the store revision they were read at."""
        ...

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        """Unconditional write; returns the new mod revision."""
        ...

    async def compare_and_swap(
        self, key: str, expected_mod_revision: int, value: bytes, lease: Lease | None = None
    ) -> tuple[bool, KeyValue | None]:
        """Write iff the key's mod revision equals `expected_mod_revision` (0 = key absent).

        Returns (True, new KeyValue) on success, else (False, current KeyValue or None).
        """
        ...

    async def compare_and_swap_many(
        self, items: Sequence[tuple[str, int, bytes, Lease | None]]
    ) -> list[tuple[bool, KeyValue | None]]:
        """Several independent compare_and_swap calls (distinct keys) in one round trip;
        results in order. Lets a busy writer batch (registrations)."""
        ...

    async def compare_and_delete(self, key: str, expected_mod_revision: int) -> tuple[bool, KeyValue | None]:
        """Delete iff the mod revision matches; returns (ok, current KeyValue or None)."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Events under `prefix` from `start_revision` (inclusive), batched as the store sends
        them. Survives store restarts and disconnects by re-opening from the last seen
        revision + 1; ends only when the iterator is closed or the store is closed.
        Raises WatchCompacted when `start_revision` (or the resume point after an outage)
        is older than the history the store keeps. `start_revision` 0 means "from when the
        watch is established" (its first iteration); to follow a listing without a gap, pass
        get_prefix's revision + 1."""
        ...

    async def grant_lease(
        self,
        ttl_s: int,
        on_lost: Callable[[], Awaitable[None] | None] | None = None,
        keep_alive: bool = True,
    ) -> Lease:
        """A lease kept alive by a background refresh; `on_lost` is called if it expires.

        The refresh runs every ttl/3. If no refresh succeeds for a whole TTL (store
        unreachable) the lease counts as lost: `lost` turns true, `on_lost` runs, and the
        lease is revoked as soon as the store answers, so its keys are gone even when the
        store itself (etcd restarted) would have extended it. `keep_alive=False` grants a
        lease that simply expires after `ttl_s` (keys with a time limit)."""
        ...

    async def close(self) -> None: ...
