"""An in-process KVStore for `modelmesh local`: etcd's semantics, one process, one file.

Same model as etcd: a global revision bumped by every write, mod/create revisions per key,
CAS on the mod revision (0 = absent), prefix watches from a past revision, leases.

Durability: every acknowledged write that outlives the process is appended to
`<state_dir>/kv.log` (one length-prefixed, CRC-checked record per write) before the call
returns, so a crash or restart loses nothing acknowledged (`fsync=True` also survives power
loss, at a cost per write). When the log grows well past the live data it is rewritten as a
snapshot to a temp file and atomically renamed over. Leased keys are never persisted: a
lease dies with the process, so after a restart its keys are gone (a leased write over a
durable key is logged as that key's deletion).

Leases live in this process, so a kept-alive lease lasts until revoked or the process
ends; `keep_alive=False` leases expire at their TTL. Watch history is kept in memory only
(the last `history_limit` events): a watch from before a restart, or from older history,
raises WatchCompacted.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import itertools
import os
import struct
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from modelmesh.kv._callbacks import run_callback
from modelmesh.kv.api import (
    EventType,
    KeyValue,
    LeaseLost,
    StoreError,
    StoreUnavailable,
    WatchCompacted,
    WatchEvent,
)
from modelmesh.observability.logging import get_logger

LOG_NAME = "kv.log"
# op (P put, D delete, R revision), revision, create revision, key length, value length, crc32
_HEADER = struct.Struct("<cQQIII")
_PUT, _DELETE, _REVISION = b"P", b"D", b"R"


class _Watcher:
    __slots__ = ("prefix", "queue")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[list[WatchEvent] | None] = asyncio.Queue()


class EmbeddedStore:
    """KVStore in this process (see module doc). `path=None` keeps everything in memory."""

    root_prefix = ""

    def __init__(self, state_dir: str | Path | None, *, fsync: bool = False, history_limit: int = 100_000) -> None:
        self._data: dict[str, KeyValue] = {}  # immutable records, handed out as they are
        self._keys: list[str] = []  # sorted, for prefix ranges
        self._revision = 0
        self._compacted = 0  # watches need start revision > this
        self._history: deque[WatchEvent] = deque()
        self._history_limit = history_limit
        self._watchers: set[_Watcher] = set()
        self._leases: dict[int, EmbeddedLease] = {}
        self._lease_ids = itertools.count(1)
        self._closed = False
        self._fsync = fsync
        self._log = get_logger("modelmesh.kv.embedded")
        self._fd: int | None = None
        self._records = 0  # records in the log since the last snapshot
        self._path = Path(state_dir) / LOG_NAME if state_dir else None
        if self._path is not None:
            self._open_log()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self._path) if self._path else 'memory'})"

    # --- persistence ---------------------------------------------------------------------

    def _open_log(self) -> None:
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self._path} is in use by another process (one embedded store per state dir)") from None
        self._fd = fd
        good = self._replay()
        size = os.fstat(fd).st_size
        if good < size:  # a torn last record from a crash mid-write: drop it
            self._log.warning("embedded store log had a torn tail; truncated", path=str(self._path),
                              dropped_bytes=size - good)
            os.ftruncate(fd, good)
        self._compacted = self._revision  # no watch history survives a restart
        if self._records > 2 * len(self._data) + 1000:
            self._snapshot()

    def _replay(self) -> int:
        """Load the log; returns the length of its valid part."""
        assert self._fd is not None
        with open(self._fd, "rb", closefd=False) as f:
            data = f.read()
        pos, n = 0, len(data)
        while pos + _HEADER.size <= n:
            op, rev, created, klen, vlen, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + klen + vlen
            if end > n:
                break
            body = data[pos + _HEADER.size : end]
            if zlib.crc32(body, zlib.crc32(data[pos : pos + _HEADER.size - 4])) != crc:
                break
            key = body[:klen].decode()
            if op == _PUT:
                self._set(key, KeyValue(key, body[klen:], rev, created, 0))
            elif op == _DELETE:
                self._unset(key)
            elif op != _REVISION:
                break
            self._revision = max(self._revision, rev)
            self._records += 1
            pos = end
        return pos

    @staticmethod
    def _record(op: bytes, rev: int, created: int, key: str, value: bytes) -> bytes:
        k = key.encode()
        head = _HEADER.pack(op, rev, created, len(k), len(value), 0)[:-4]
        crc = zlib.crc32(k + value, zlib.crc32(head))
        return head + struct.pack("<I", crc) + k + value

    def _append(self, op: bytes, rev: int, created: int, key: str, value: bytes = b"") -> None:
        if self._fd is None:
            return
        os.write(self._fd, self._record(op, rev, created, key, value))
        if self._fsync:
            os.fsync(self._fd)
        self._records += 1
        if self._records > 2 * len(self._data) + 10_000:
            self._snapshot()

    def _snapshot(self) -> None:
        """Rewrite the log as the durable entries only: temp file, fsync, atomic rename."""
        assert self._path is not None and self._fd is not None
        tmp = self._path.with_suffix(".tmp")
        parts = [self._record(_REVISION, self._revision, 0, "", b"")]
        parts += [self._record(_PUT, e.mod_revision, e.create_revision, k, e.value)
                  for k, e in self._data.items() if not e.lease]
        with open(tmp, "wb") as f:
            f.write(b"".join(parts))
            f.flush()
            os.fsync(f.fileno())
        new_fd = os.open(tmp, os.O_RDWR | os.O_APPEND)
        fcntl.flock(new_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self._path)
        os.close(self._fd)
        self._fd, self._records = new_fd, len(parts)

    # --- in-memory state -----------------------------------------------------------------

    def _set(self, key: str, entry: KeyValue) -> None:
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = entry

    def _unset(self, key: str) -> KeyValue | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]
        return entry

    def _range(self, prefix: str) -> list[str]:
        lo = bisect.bisect_left(self._keys, prefix)
        if not prefix:
            return self._keys[lo:]
        n = len(prefix)
        hi = bisect.bisect_right(self._keys, prefix, lo, key=lambda k: k[:n])
        return self._keys[lo:hi]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("embedded store is closed")

    def _lease_id(self, lease: object) -> int:
        if lease is None:
            return 0
        held = self._leases.get(lease.id)  # type: ignore[attr-defined]
        if held is None or held.lost:
            raise LeaseLost(f"lease {lease.id:x} is lost; grant a new one")  # type: ignore[attr-defined]
        return held.id

    def _put_at(self, key: str, value: bytes, lease_id: int, rev: int) -> KeyValue:
        old = self._data.get(key)
        created = old.create_revision if old is not None else rev
        if old is not None and old.lease and old.lease != lease_id and old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        kv = KeyValue(key, value, rev, created, lease_id)
        self._set(key, kv)
        if lease_id:
            self._leases[lease_id].keys.add(key)
            if old is not None and not old.lease:
                self._append(_DELETE, rev, 0, key)  # the durable value is gone
        else:
            self._append(_PUT, rev, created, key, value)
        return kv

    def _remove_at(self, key: str, rev: int) -> WatchEvent | None:
        entry = self._unset(key)
        if entry is None:
            return None
        if entry.lease:
            if entry.lease in self._leases:
                self._leases[entry.lease].keys.discard(key)
        else:
            self._append(_DELETE, rev, 0, key)
        return WatchEvent(EventType.DELETE, key, b"", rev)

    def _write(self, key: str, value: bytes, lease_id: int) -> KeyValue:
        self._revision += 1
        kv = self._put_at(key, value, lease_id, self._revision)
        self._publish([WatchEvent(EventType.PUT, key, value, kv.mod_revision)])
        return kv

    def _delete_keys(self, keys: list[str]) -> int:
        if not keys:
            return 0
        self._revision += 1
        rev = self._revision
        events = [e for e in (self._remove_at(key, rev) for key in keys) if e is not None]
        self._publish(events)
        return len(events)

    def _publish(self, events: list[WatchEvent]) -> None:
        self._history.extend(events)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().mod_revision
        for w in self._watchers:
            batch = [e for e in events if e.key.startswith(w.prefix)]
            if batch:
                w.queue.put_nowait(batch)

    # --- synchronous access, to compose transactions (the etcd front) -------------------
    # Nothing here awaits, so reads and the write that follows them are atomic in this
    # single-threaded store.

    def get_now(self, key: str) -> KeyValue | None:
        self._check_open()
        return self._data.get(key)

    def get_prefix_now(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        data = self._data
        return [data[k] for k in self._range(prefix)], self._revision

    @property
    def current_revision(self) -> int:
        return self._revision

    def apply(self, ops: Sequence[tuple[str, bytes | None, object]]) -> int:
        """Puts (key, value, lease or None) and deletes (key, None, None) as one write at one
        new revision, as an etcd transaction is; returns that revision (the current one when
        nothing changed). A lost lease raises LeaseLost before anything is written."""
        self._check_open()
        lease_ids = [self._lease_id(lease) if value is not None else 0 for _, value, lease in ops]
        if not any(value is not None or key in self._data for key, value, _ in ops):
            return self._revision
        self._revision += 1
        rev = self._revision
        events = []
        for (key, value, _), lease_id in zip(ops, lease_ids):
            if value is None:
                event = self._remove_at(key, rev)
                if event is not None:
                    events.append(event)
            else:
                self._put_at(key, value, lease_id, rev)
                events.append(WatchEvent(EventType.PUT, key, value, rev))
        self._publish(events)
        return rev

    def lease(self, lease_id: int) -> "EmbeddedLease | None":
        """A live lease by id (None when it expired, was revoked or never existed)."""
        return self._leases.get(lease_id)

    # --- KVStore -------------------------------------------------------------------------

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    async def get(self, key: str) -> KeyValue | None:
        return self.get_now(key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        return self.get_prefix_now(prefix)

    async def put(self, key: str, value: bytes, lease: object = None) -> int:
        self._check_open()
        return self._write(key, value, self._lease_id(lease)).mod_revision

    async def compare_and_swap(
        self, key: str, expected_mod_revision: int, value: bytes, lease: object = None
    ) -> tuple[bool, KeyValue | None]:
        self._check_open()
        lease_id = self._lease_id(lease)
        e = self._data.get(key)
        if (e.mod_revision if e else 0) != expected_mod_revision:
            return False, e
        return True, self._write(key, value, lease_id)

    async def compare_and_swap_many(self, items) -> list[tuple[bool, KeyValue | None]]:
        """Independent compare-and-swaps (the etcd backend sends them in one round trip)."""
        return [await self.compare_and_swap(key, expected, value, lease) for key, expected, value, lease in items]

    async def compare_and_delete(self, key: str, expected_mod_revision: int) -> tuple[bool, KeyValue | None]:
        self._check_open()
        e = self._data.get(key)
        if (e.mod_revision if e else 0) != expected_mod_revision:
            return False, e
        if e is not None:
            self._delete_keys([key])
        return True, None

    async def delete(self, key: str) -> bool:
        self._check_open()
        return self._delete_keys([key] if key in self._data else []) > 0

    async def delete_prefix(self, prefix: str) -> int:
        self._check_open()
        return self._delete_keys(self._range(prefix))

    async def compact(self, revision: int) -> None:
        """Drop watch history up to `revision`, as etcd's compaction does."""
        self._check_open()
        while self._history and self._history[0].mod_revision <= revision:
            self._history.popleft()
        self._compacted = max(self._compacted, min(revision, self._revision))

    async def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        self._check_open()
        start = start_revision or self._revision + 1
        if start <= self._compacted:
            raise WatchCompacted(self._compacted)
        watcher = _Watcher(prefix)
        # Replay and subscribe with no await in between, so no event falls in a gap.
        backlog = [e for e in self._history if e.mod_revision >= start and e.key.startswith(prefix)]
        self._watchers.add(watcher)
        try:
            # One batch per revision, as etcd would deliver them.
            for _, group in itertools.groupby(backlog, key=lambda e: e.mod_revision):
                yield list(group)
            while True:
                batch = await watcher.queue.get()
                if batch is None:
                    return
                if batch[0].mod_revision < start:  # a start revision in the future
                    batch = [e for e in batch if e.mod_revision >= start]
                    if not batch:
                        continue
                yield batch
        finally:
            self._watchers.discard(watcher)

    async def grant_lease(
        self,
        ttl_s: int,
        on_lost: Callable[[], Awaitable[None] | None] | None = None,
        keep_alive: bool = True,
    ) -> "EmbeddedLease":
        self._check_open()
        lease = EmbeddedLease(self, next(self._lease_ids), max(1, int(ttl_s)), on_lost)
        self._leases[lease.id] = lease
        if not keep_alive:
            lease._expiry = asyncio.get_running_loop().call_later(lease.ttl_s, lease._expire)
        return lease

    def _end_lease(self, lease: "EmbeddedLease") -> None:
        if self._leases.pop(lease.id, None) is None:
            return
        if lease.keys and not self._closed:
            self._delete_keys(sorted(lease.keys))
        lease.keys.clear()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for lease in list(self._leases.values()):
            lease._cancel_expiry()
        for w in self._watchers:
            w.queue.put_nowait(None)
        if self._fd is not None:
            if self._fsync:
                os.fsync(self._fd)
            os.close(self._fd)  # also releases the flock
            self._fd = None


class EmbeddedLease:
    def __init__(self, store: EmbeddedStore, lease_id: int, ttl_s: int,
                 on_lost: Callable[[], Awaitable[None] | None] | None) -> None:
        self.id = lease_id
        self.ttl_s = ttl_s
        self.keys: set[str] = set()
        self._store = store
        self._on_lost = on_lost
        self._lost = False
        self._expiry: asyncio.TimerHandle | None = None
        self._callback_task: asyncio.Task | None = None

    @property
    def lost(self) -> bool:
        return self._lost

    def __repr__(self) -> str:
        return f"EmbeddedLease({self.id:x}, ttl={self.ttl_s}, lost={self._lost})"

    async def revoke(self) -> None:
        self._cancel_expiry()
        self._lost = True
        self._store._end_lease(self)

    def refresh(self) -> int:
        """Restart the TTL of a lease granted with keep_alive=False (a remote holder's
        keep-alive, through the etcd front); the TTL, or 0 when the lease is gone."""
        if self._lost or self._expiry is None:
            return 0 if self._lost else self.ttl_s
        self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(self.ttl_s, self._expire)
        return self.ttl_s

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _expire(self) -> None:
        self._expiry = None
        if self._lost:
            return
        self._lost = True
        self._store._end_lease(self)
        if self._on_lost is not None:
            self._callback_task = asyncio.ensure_future(run_callback(self._on_lost, what="lease on_lost"))
