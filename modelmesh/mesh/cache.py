"""This instance's model cache: which copies it holds, their sizes, LRU order and capacity.

Pure bookkeeping (no I/O): the instance asks it for room, starts/finishes loads and
unloads through it, and it guarantees that loaded + loading + unloading never exceeds the
capacity the runtime reported.

As in the reference (ModelCacheUnloadBufManager), part of the capacity is an unload buffer:
loaded + loading copies are kept within `capacity - unload_reserve`, so the space of an
evicted copy still unloading comes out of the buffer and a load need not wait for the
unload that made its room (it waits only when unloads in flight outgrow the buffer).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from dataclasses import dataclass, field


SIZE_UNIT = 8192  # the reference's cache weight unit


def now_ms() -> int:
    return int(time.time() * 1000)


def unload_reserve_bytes(capacity: int, loading_concurrency: int, default_size: int) -> int:
    """The reference's unload buffer: loadingThreads x defaultModelSize / (2, or 4 beyond two
    loading threads), within 1%..10% of the capacity, in whole 8 KiB units."""
    cap_units = capacity // SIZE_UNIT
    default_units = -(-default_size // SIZE_UNIT)
    loading = max(1, loading_concurrency)
    wanted = loading * default_units // (2 if loading <= 2 else 4)
    return max(min(wanted, cap_units // 10), cap_units // 100) * SIZE_UNIT


class CopyState(enum.Enum):
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"


@dataclass(eq=False)
class LocalCopy:
    model_id: str
    size: int
    state: CopyState = CopyState.LOADING
    last_used: int = field(default_factory=now_ms)
    load_started: int = field(default_factory=now_ms)
    loaded_at: int = 0
    inflight: int = 0
    max_concurrency: int = 0
    limiter: asyncio.Semaphore | None = None  # per-copy concurrency limit (limitModelConcurrency)
    # Resolves (True) when the load completes, or with the load's exception.
    ready: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def serving(self) -> bool:
        return self.state is CopyState.LOADED


class LocalCache:
    def __init__(self, capacity_bytes: int, min_churn_age_ms: int, unload_reserve_bytes: int = 0) -> None:
        self.capacity = capacity_bytes
        self.unload_reserve = max(0, min(unload_reserve_bytes, capacity_bytes))
        self.min_churn_age_ms = min_churn_age_ms
        self.used = 0  # loaded + loading + unloading
        self.unloading = 0  # of which copies still being unloaded
        # Least recently used first; `touch` moves a copy to the end.
        self._copies: OrderedDict[str, LocalCopy] = OrderedDict()
        # Signalled whenever space is released, so a waiting load can retry.
        self.space_freed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._copies)

    def get(self, model_id: str) -> LocalCopy | None:
        return self._copies.get(model_id)

    def copies(self) -> list[LocalCopy]:
        return list(self._copies.values())

    def loaded_ids(self) -> list[str]:
        return [c.model_id for c in self._copies.values() if c.state is CopyState.LOADED]

    def touch(self, copy: LocalCopy, at_ms: int | None = None) -> None:
        copy.last_used = at_ms if at_ms is not None else now_ms()
        self._copies.move_to_end(copy.model_id)

    @property
    def free(self) -> int:
        return self.capacity - self.used

    @property
    def model_capacity(self) -> int:
        """What loaded + loading copies may hold: the capacity less the unload buffer."""
        return self.capacity - self.unload_reserve

    @property
    def models_used(self) -> int:
        """Bytes of loaded and loading copies (not of those being unloaded)."""
        return self.used - self.unloading

    @property
    def published_capacity(self) -> int:
        """The capacity the instance record and gauges show (as the reference publishes it):
        less the unload buffer, or less the unloads in flight when they outgrow it, so that
        published capacity - models_used is the room a load gets without evicting."""
        return self.capacity - max(self.unload_reserve, self.unloading)

    def fits(self, size: int) -> bool:
        """A load of `size` can start now without overcommitting the runtime."""
        return self.used + size <= self.capacity

    @property
    def loading_count(self) -> int:
        return sum(1 for c in self._copies.values() if c.state is CopyState.LOADING)

    def lru_time(self) -> int:
        """Last-used time of the least recently used loaded copy (0 when none)."""
        for c in self._copies.values():
            if c.state is CopyState.LOADED:
                return c.last_used
        return 0

    def eviction_candidates(self, needed: int, now: int | None = None) -> list[LocalCopy] | None:
        """LRU-first copies whose eviction makes room for `needed` bytes within the model
        capacity (copies being unloaded are already leaving), or None if that is impossible
        right now (copies in use or younger than the churn age)."""
        shortfall = needed - (self.model_capacity - self.models_used)
        if shortfall <= 0:
            return []
        now = now if now is not None else now_ms()
        chosen, freed = [], 0
        for c in self._copies.values():
            if c.state is not CopyState.LOADED or c.inflight > 0:
                continue
            if now - c.last_used < self.min_churn_age_ms:
                break  # everything after this is more recent
            chosen.append(c)
            freed += c.size
            if freed >= shortfall:
                return chosen
        return None

    def reserve(self, model_id: str, size: int) -> LocalCopy:
        """Add a LOADING copy holding `size` bytes; caller made sure it fits."""
        if size > self.free:
            raise ValueError(f"reserve of {size} bytes exceeds free space {self.free}")
        copy = LocalCopy(model_id=model_id, size=size)
        self._copies[model_id] = copy
        self.used += size
        return copy

    def resize(self, copy: LocalCopy, size: int) -> None:
        """The real size is known after the load; it may exceed the reservation."""
        if self._copies.get(copy.model_id) is copy:
            self.used += size - copy.size
            if copy.state is CopyState.UNLOADING:
                self.unloading += size - copy.size
        copy.size = size

    def mark_loaded(self, copy: LocalCopy, max_concurrency: int = 0) -> None:
        copy.state = CopyState.LOADED
        copy.loaded_at = now_ms()
        copy.max_concurrency = max_concurrency
        if max_concurrency > 0:
            copy.limiter = asyncio.Semaphore(max_concurrency)
        self.touch(copy)
        if not copy.ready.done():
            copy.ready.set_result(True)

    def begin_unload(self, copy: LocalCopy) -> None:
        if copy.state is not CopyState.UNLOADING and self._copies.get(copy.model_id) is copy:
            self.unloading += copy.size
        copy.state = CopyState.UNLOADING

    async def release(self, copy: LocalCopy, error: BaseException | None = None) -> None:
        """Forget a copy (unloaded, or its load failed) and give its space back."""
        if self._copies.get(copy.model_id) is copy:
            del self._copies[copy.model_id]
            self.used -= copy.size
            if copy.state is CopyState.UNLOADING:
                self.unloading -= copy.size
        if not copy.ready.done():
            if error is not None:
                copy.ready.set_exception(error)
                copy.ready.exception()  # retrieved here so an unawaited failure is not logged
            else:
                copy.ready.cancel()
        async with self.space_freed:
            self.space_freed.notify_all()
