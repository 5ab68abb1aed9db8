"""A table of records under one key prefix: reads from a watched in-memory view, writes as
compare-and-swap using the view's mod revision (no read before a swap)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from modelmesh.kv import Change, KVStore, Lease, StoreError, StoreUnavailable, WatchedPrefix
from modelmesh.mesh.errors import MeshError, StoreDown
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.tables")


class Record(Protocol):
    def to_json(self) -> bytes: ...


R = TypeVar("R", bound=Record)
CAS_ATTEMPTS = 100
ECHO_TIMEOUT_S = 5.0  # how long a writer waits for its write to show in the view
# A read on a request's path (a miss) waits at most this long for a store that does not
# answer: then the request goes on from the view, or gets UNAVAILABLE.
LOOKUP_TIMEOUT_S = 2.0


class CasBatcher:
    """Sends a table's compare-and-swaps with at most one round trip in flight: whatever
    arrives meanwhile goes together in the next one (one etcd transaction for up to
    MAX_BATCH keys). Alone, a write goes out at once; under load, writes batch themselves."""

    MAX_BATCH = 32

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self._queue: list[tuple[str, int, bytes, Lease | None, asyncio.Future]] = []
        self._runner: asyncio.Task | None = None

    async def compare_and_swap(self, key: str, revision: int, value: bytes, lease: Lease | None):
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((key, revision, value, lease, fut))
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        return await fut

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, keys, rest = [], set(), []
                for item in self._queue:
                    if item[4].done():
                        continue  # the caller gave up (cancelled)
                    if item[0] in keys or len(batch) >= self.MAX_BATCH:
                        rest.append(item)  # a key may appear once per transaction
                    else:
                        keys.add(item[0])
                        batch.append(item)
                self._queue = rest
                if not batch:
                    continue
                try:
                    if len(batch) == 1:
                        key, rev, value, lease, _ = batch[0]
                        results = [await self.store.compare_and_swap(key, rev, value, lease)]
                    else:
                        results = await self.store.compare_and_swap_many([b[:4] for b in batch])
                except Exception as e:  # noqa: BLE001 - every writer in the batch gets the error
                    for b in batch:
                        if not b[4].done():
                            b[4].set_exception(e)
                    continue
                for b, result in zip(batch, results):
                    if not b[4].done():
                        b[4].set_result(result)
        finally:
            self._runner = None

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for item in self._queue:
            if not item[4].done():
                item[4].cancel()
        self._queue.clear()


class Table(Generic[R]):
    def __init__(self, store: KVStore, prefix: str, decode: Callable[[bytes], R], name: str,
                 echo_writes: bool = False) -> None:
        """`echo_writes`: a write returns only once the view (and so every on_change
        subscriber, e.g. a derived index) has seen it; otherwise readers of this table see
        our writes at once through an overlay, but subscribers only when the watch delivers."""
        self.store = store
        self._echo_writes = echo_writes
        self._cas = CasBatcher(store)
        self.prefix = prefix
        self.name = name
        self._decode = decode
        self.view: WatchedPrefix[R] = WatchedPrefix(store, prefix, lambda _id, raw: decode(raw), name=name)
        self._snapshot: dict[str, R] | None = None
        # Our own writes the view has not shown yet: id -> (record, mod revision). Readers in
        # this process see a write as soon as it is acknowledged, without waiting for the
        # watch to echo it.
        self._recent: dict[str, tuple[R, int]] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.view.on_change(self._changed)

    async def start(self, timeout_s: float | None = None) -> None:
        await self.view.start()
        await self.view.synced(timeout_s)

    async def close(self) -> None:
        self._cas.close()
        await self.view.close()

    def on_change(self, callback: Callable[[list[Change[R]]], object]) -> None:
        self.view.on_change(callback)  # type: ignore[arg-type]

    # --- reads (in memory) ----------------------------------------------------------------

    def get(self, id: str) -> R | None:
        if self._recent:
            mine = self._recent.get(id)
            if mine is not None:
                entry = self.view.entry(id)
                if entry is None or entry.mod_revision < mine[1]:
                    return mine[0]
                del self._recent[id]
        return self.view.get(id)

    def _entry(self, id: str) -> tuple[R, int] | None:
        """(record, mod revision) as get() sees it: the CAS token for the next update."""
        mine = self._recent.get(id)
        entry = self.view.entry(id)
        if mine is not None and (entry is None or entry.mod_revision < mine[1]):
            return mine
        return (entry.value, entry.mod_revision) if entry is not None else None

    def _remember(self, id: str, record: R, revision: int) -> None:
        self._recent[id] = (record, revision)
        for ev in self._waiters.get(id, ()):
            ev.set()

    def __len__(self) -> int:
        return len(self.view)

    def items(self) -> dict[str, R]:
        """A snapshot dict, rebuilt only after a change (cheap to call per request)."""
        if self._snapshot is None:
            self._snapshot = self.view.snapshot()
        return self._snapshot

    def records(self) -> list[tuple[str, R]]:
        """(id, record) pairs of the view, for scans off the hot path (no snapshot dict kept)."""
        return list(self.view.items())

    def _changed(self, changes: list[Change[R]]) -> None:
        self._snapshot = None
        recent = self._recent
        for c in changes:
            if recent:
                mine = recent.get(c.id)
                if mine is not None and c.mod_revision >= mine[1]:
                    del recent[c.id]
            for ev in self._waiters.get(c.id, ()):
                ev.set()

    async def wait_for(self, id: str, predicate: Callable[[R | None], bool], timeout_s: float,
                       recheck_s: float = 0.5) -> bool:
        """Wait until `predicate(record)` holds (re-checked on every change of the record and
        every `recheck_s` for predicates that also read other tables)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        ev = asyncio.Event()
        self._waiters.setdefault(id, set()).add(ev)
        try:
            while not predicate(self.get(id)):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), min(remaining, recheck_s))
                except asyncio.TimeoutError:
                    pass
            return True
        finally:
            waiters = self._waiters.get(id)
            if waiters is not None:
                waiters.discard(ev)
                if not waiters:
                    del self._waiters[id]

    # --- writes (compare-and-swap) --------------------------------------------------------

    def _key(self, id: str) -> str:
        return self.prefix + id

    async def _echo(self, revision: int) -> None:
        # Readers in this process see our write as soon as we return.
        try:
            await self.view.caught_up(revision, ECHO_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("write not yet visible in view", table=self.name, revision=revision)

    async def update(self, id: str, change: Callable[[R | None], R | None], lease: Lease | None = None) -> R | None:
        """Apply `change(current)` atomically. `change` returns the new record, the same
        object for no change, or None for no write (e.g. the record is gone); the result is
        what the table holds afterwards (None when nothing was written)."""
        entry = self._entry(id)
        if entry is not None:
            current, revision = entry
        else:  # not in the view yet (just written elsewhere?): one read to be sure
            kv = await self.store.get(self._key(id))
            current, revision = (self._decode(kv.value), kv.mod_revision) if kv else (None, 0)
        for _ in range(CAS_ATTEMPTS):
            new = change(current)
            if new is None:
                return None
            if new is current:
                return current
            ok, kv = await self._cas.compare_and_swap(self._key(id), revision, new.to_json(), lease)
            if ok:
                self._remember(id, new, kv.mod_revision)
                if self._echo_writes:
                    await self._echo(kv.mod_revision)
                return new
            current, revision = (self._decode(kv.value), kv.mod_revision) if kv else (None, 0)
        raise MeshError(f"too much contention updating {self.name}/{id}")

    async def create(self, id: str, record: R, lease: Lease | None = None) -> bool:
        ok, kv = await self._cas.compare_and_swap(self._key(id), 0, record.to_json(), lease)
        if ok:
            self._remember(id, record, kv.mod_revision)
            if self._echo_writes:
                await self._echo(kv.mod_revision)
        return ok

    async def put(self, id: str, record: R, lease: Lease | None = None) -> None:
        revision = await self.store.put(self._key(id), record.to_json(), lease)
        await self._echo(revision)

    async def delete(self, id: str) -> bool:
        self._recent.pop(id, None)
        existed = await self.store.delete(self._key(id))
        if existed:
            await self.wait_for(id, lambda r: r is None, ECHO_TIMEOUT_S)
        return existed

    async def delete_if(self, id: str, condition: Callable[[R], bool]) -> R | None:
        """Delete the record only if `condition(record)` holds, as a compare-and-delete at the
        revision the condition was checked on (re-checked after a concurrent change), so a
        write that would make the condition false cannot slip in between. Returns the record
        when the condition refused; None when it was deleted or did not exist."""
        entry = self._entry(id)
        if entry is None:
            kv = await self.store.get(self._key(id))
            if kv is None:
                return None
            entry = (self._decode(kv.value), kv.mod_revision)
        current, revision = entry
        for _ in range(CAS_ATTEMPTS):
            if not condition(current):
                return current
            ok, kv = await self.store.compare_and_delete(self._key(id), revision)
            if ok or kv is None:
                self._recent.pop(id, None)
                await self.wait_for(id, lambda r: r is None, ECHO_TIMEOUT_S)
                return None
            current, revision = self._decode(kv.value), kv.mod_revision
        raise MeshError(f"too much contention deleting {self.name}/{id}")

    async def fetch(self, id: str) -> R | None:
        """Read through to the store, for ids the view does not (yet) know: another
        instance may have just written them. Only misses pay this round trip; StoreDown
        (UNAVAILABLE) when the store cannot be reached."""
        record = self.get(id)
        if record is not None:
            return record
        try:
            kv = await asyncio.wait_for(self.store.get(self._key(id)), LOOKUP_TIMEOUT_S)
        except (StoreUnavailable, StoreError, asyncio.TimeoutError) as e:
            # Not in our view and the store cannot say: unknown, which is not "not found".
            raise StoreDown(f"coordination store unavailable, cannot look up {self.name}/{id}: "
                            f"{e or 'no answer'}") from None
        return self._decode(kv.value) if kv is not None else None

    async def read(self, id: str) -> R | None:
        """The record as the store has it now (the view may lag by a watch event). For
        decisions off the hot path, such as where to load on a cache miss."""
        try:
            kv = await asyncio.wait_for(self.store.get(self._key(id)), LOOKUP_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - store down or slow: the view is all we know
            return self.get(id)
        return self._decode(kv.value) if kv is not None else None

    async def refresh(self, id: str) -> None:
        """After losing a create race: wait until the view shows the winner's record."""
        kv = await self.store.get(self._key(id))
        if kv is not None:
            await self._echo(kv.mod_revision)
