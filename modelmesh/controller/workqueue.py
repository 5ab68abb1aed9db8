"""Per-object work queues (after kopf's reactor): one pending entry per key, never two
workers on the same key, exponential backoff on failure, requeue on request."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.queue")

# A handler returns seconds until the key should be looked at again, or None.
Handler = Callable[[Any], Awaitable[float | None]]


class QueueMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter("modelmesh_controller_reconcile_total", "Reconciles by queue and result",
                            ["queue", "result"], registry=registry)
        self.depth = Gauge("modelmesh_controller_queue_depth", "Keys waiting", ["queue"], registry=registry)


class WorkQueue:
    def __init__(self, name: str, handler: Handler, workers: int = 2, base_backoff_s: float = 0.25,
                 max_backoff_s: float = 30.0, metrics: QueueMetrics | None = None) -> None:
        self.name = name
        self._handler = handler
        self._workers = workers
        self._base = base_backoff_s
        self._max = max_backoff_s
        self._metrics = metrics
        self._due: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._active: set[Hashable] = set()
        self._again: dict[Hashable, float] = {}  # re-added while being processed
        self._failures: dict[Hashable, int] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def add(self, key: Hashable, after_s: float = 0.0) -> None:
        when = asyncio.get_running_loop().time() + max(0.0, after_s)
        if key in self._active:
            self._again[key] = min(when, self._again.get(key, when))
            return
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        self._changed.set()
        if self._metrics:
            self._metrics.depth.labels(self.name).set(len(self._due))

    def __len__(self) -> int:
        return len(self._due) + len(self._active)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}")
                       for i in range(self._workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _next(self) -> Hashable:
        loop = asyncio.get_running_loop()
        while True:
            while self._heap:
                when, _, key = self._heap[0]
                if self._due.get(key) != when:
                    heapq.heappop(self._heap)  # superseded by an earlier add
                    continue
                if when > loop.time():
                    break
                heapq.heappop(self._heap)
                del self._due[key]
                self._active.add(key)
                return key
            timeout = self._heap[0][0] - loop.time() if self._heap else None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _work(self) -> None:
        while True:
            key = await self._next()
            try:
                again = await self._handler(key)
                self._failures.pop(key, None)
                if self._metrics:
                    self._metrics.runs.labels(self.name, "ok").inc()
                if again is not None:
                    self._requeue(key, again)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - one bad object must not stop the queue
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                delay = min(self._max, self._base * 2 ** (n - 1))
                log.warning("reconcile failed, retrying", queue=self.name, key=str(key), attempt=n,
                            retry_in_s=round(delay, 2), error=f"{type(e).__name__}: {e}")
                if self._metrics:
                    self._metrics.runs.labels(self.name, "error").inc()
                self._requeue(key, delay)
            finally:
                self._active.discard(key)
                if key in self._again:
                    when = self._again.pop(key)
                    self.add(key, when - asyncio.get_running_loop().time())

    def _requeue(self, key: Hashable, after_s: float) -> None:
        when = asyncio.get_running_loop().time() + after_s
        self._again[key] = min(when, self._again.get(key, when))
