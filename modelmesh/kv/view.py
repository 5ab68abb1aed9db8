"""WatchedPrefix: an in-memory dict of one key prefix, kept current by list + watch.

This is what request routing reads: no store round trip per request. Each entry keeps the
key's mod revision, which is the CAS token for the next update, so writers need no `get`
before a swap (`view.entry(id).mod_revision`).

Lifecycle: `start()` lists the prefix and watches from the listed revision + 1;
`await synced()` waits for the first listing. While the store is unreachable the view keeps
serving its last state (the store's watch resumes where it stopped once the store is back).
If the store compacted the history the view needs (WatchCompacted), the view re-lists and
reports the difference to its callbacks as ordinary changes.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelmesh.kv._callbacks import run_callback
from modelmesh.kv.api import EventType, KVStore, StoreError, StoreUnavailable, WatchCompacted
from modelmesh.observability.logging import get_logger

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    value: T
    mod_revision: int  # the CAS token for the next update of this key


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """One key's change. `old` None = created; `new` None = deleted."""

    id: str  # the key without the view's prefix
    old: T | None
    new: T | None
    mod_revision: int


ChangeCallback = Callable[[list[Change[T]]], Awaitable[None] | None]


class WatchedPrefix(Generic[T]):
    """A live view of `prefix` with values decoded by `decode(id, raw)`.

    Keys are exposed without the prefix ("ids"). A value that fails to decode is logged and
    left out of the view (as if deleted), so one bad record cannot stop the view; `decode`
    may also return None to leave a key out on purpose.
    """

    def __init__(
        self,
        store: KVStore,
        prefix: str,
        decode: Callable[[str, bytes], T] | None = None,
        *,
        name: str = "",
        retry_max_s: float = 2.0,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.name = name or prefix
        self._decode = decode or (lambda _id, raw: raw)  # type: ignore[assignment, return-value]
        self._entries: dict[str, Versioned[T]] = {}
        self._callbacks: list[ChangeCallback[T]] = []
        self._revision = 0  # the view reflects the prefix at least up to this revision
        self._synced = asyncio.Event()
        # (revision, seq, future) heap: writers waiting to see their write in the view.
        self._revision_waiters: list[tuple[int, int, asyncio.Future]] = []
        self._waiter_seq = 0
        self._task: asyncio.Task | None = None
        self._retry_max_s = retry_max_s
        self.resyncs = 0  # full re-listings after the first (compaction); for tests and metrics
        self.decode_errors = 0
        self._log = get_logger("modelmesh.kv.view", view=self.name)

    # --- reading -------------------------------------------------------------------------

    def get(self, id: str) -> T | None:
        e = self._entries.get(id)
        return e.value if e is not None else None

    def entry(self, id: str) -> Versioned[T] | None:
        return self._entries.get(id)

    def __contains__(self, id: object) -> bool:
        return id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        for id, e in self._entries.items():
            yield id, e.value

    def snapshot(self) -> dict[str, T]:
        return {id: e.value for id, e in self._entries.items()}

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def is_synced(self) -> bool:
        return self._synced.is_set()

    # --- lifecycle -----------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback[T]) -> None:
        """Call `callback(changes)` (sync or async) after each applied batch, in order.

        The first listing is reported too (every entry as created). Async callbacks are
        awaited by the view's task, so a slow callback delays later updates.
        """
        self._callbacks.append(callback)

    async def start(self) -> "WatchedPrefix[T]":
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        return self

    async def synced(self, timeout: float | None = None) -> None:
        """Wait until the view holds a complete listing of the prefix."""
        await asyncio.wait_for(self._synced.wait(), timeout)

    async def caught_up(self, revision: int, timeout: float | None = None) -> None:
        """Wait until the view reflects a write under this prefix made at `revision`."""
        if self._revision >= revision:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiter_seq += 1
        heapq.heappush(self._revision_waiters, (revision, self._waiter_seq, fut))
        # A bare future (no task per waiter): writers under load wait on this a lot.
        await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    # --- the sync loop -------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        # A view that was synced before (restarted after close) resumes its watch first.
        must_list = not self._synced.is_set()
        while True:
            try:
                if must_list:
                    await self._relist()
                    must_list, delay = False, 0.05
                async for batch in self.store.watch_prefix(self.prefix, self._revision + 1):
                    await self._apply_events(batch)
            except WatchCompacted as e:
                self.resyncs += 1
                must_list = True
                self._log.info("watch history compacted; re-listing", compact_revision=e.compact_revision)
                continue
            except (StoreUnavailable, StoreError) as e:
                # Keep serving the last state; try again with a bounded backoff.
                self._log.warning("view cannot sync; serving last state", error=str(e))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the view must outlive surprises
                self._log.error("view sync failed", error=repr(e))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _relist(self) -> None:
        kvs, revision = await self.store.get_prefix(self.prefix)
        fresh: dict[str, Versioned[T]] = {}
        n = len(self.prefix)
        for kv in kvs:
            value = self._decode_or_none(kv.key[n:], kv.value)
            if value is not None:
                fresh[kv.key[n:]] = Versioned(value, kv.mod_revision)
        changes: list[Change[T]] = []
        old_entries = self._entries
        for id, e in fresh.items():
            old = old_entries.get(id)
            if old is None or old.mod_revision != e.mod_revision:
                changes.append(Change(id, old.value if old else None, e.value, e.mod_revision))
        for id, old in old_entries.items():
            if id not in fresh:
                changes.append(Change(id, old.value, None, revision))
        self._entries = fresh
        await self._advance(max(revision, self._revision), changes)
        self._synced.set()

    async def _apply_events(self, batch: list) -> None:
        n = len(self.prefix)
        entries = self._entries
        changes: list[Change[T]] = []
        for ev in batch:
            id = ev.key[n:]
            old = entries.get(id)
            new: T | None = None
            if ev.type is EventType.PUT:
                new = self._decode_or_none(id, ev.value)
            if new is not None:
                entries[id] = Versioned(new, ev.mod_revision)
            elif old is not None:
                del entries[id]
            else:
                continue
            changes.append(Change(id, old.value if old else None, new, ev.mod_revision))
        await self._advance(batch[-1].mod_revision, changes)

    def _decode_or_none(self, id: str, raw: bytes) -> T | None:
        try:
            return self._decode(id, raw)
        except Exception as e:  # noqa: BLE001 - a bad record must not stop the view
            self.decode_errors += 1
            self._log.error("undecodable value left out of the view", id=id, error=repr(e))
            return None

    async def _advance(self, revision: int, changes: list[Change[T]]) -> None:
        self._revision = revision
        waiters = self._revision_waiters
        while waiters and waiters[0][0] <= revision:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                fut.set_result(None)
        if changes:
            for cb in self._callbacks:
                await run_callback(cb, changes, what=f"view {self.name} on_change")
