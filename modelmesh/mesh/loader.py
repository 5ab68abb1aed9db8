"""Loading and unloading copies on this instance: single-flight loads, room made by LRU
eviction, bounded loading concurrency, load timeout, and the registry kept in step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc

from modelmesh.kv import Change, StoreError, StoreUnavailable
from modelmesh.mesh.cache import CopyState, LocalCache, LocalCopy, now_ms
from modelmesh.mesh.errors import LoadFailed, ModelNotFound, NoCapacity, RuntimeDown, ShuttingDown
from modelmesh.mesh.metrics import MeshMetrics
from modelmesh.mesh.records import ModelRecord
from modelmesh.mesh.runtime_client import RuntimeClient
from modelmesh.mesh.tables import Table
from modelmesh.mesh.tasks import TaskOwner
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.loader")

ModelEvent = Callable[[str], Awaitable[None]]
LoadFailedEvent = Callable[[str, bool], Awaitable[None]]  # (model id, failed because the runtime is down)
STALE_LOAD_CLAIM_MS = 30_000  # a load claimed for this instance that never started
CLAIM_TIMEOUT_S = 2.0  # a store that does not answer by then is treated as down


def _error_text(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return e.details() or e.code().name
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


class ModelLoader:
    def __init__(
        self,
        instance_id: str,
        cache: LocalCache,
        runtime: RuntimeClient,
        models: Table[ModelRecord],
        metrics: MeshMetrics,
        tasks: TaskOwner,
        *,
        load_timeout_s: float,
        max_loading: int,
        default_size: int,
        on_loaded: ModelEvent,
        on_failed: LoadFailedEvent,
    ) -> None:
        self.instance_id = instance_id
        self.cache = cache
        self.runtime = runtime
        self.models = models
        self.metrics = metrics
        self.load_timeout_s = load_timeout_s
        self.default_size = default_size
        self._loading = asyncio.Semaphore(max(1, max_loading))
        self._on_loaded = on_loaded
        self._on_failed = on_failed
        self._tasks = tasks
        self.accepting = True
        # False while the runtime is unreachable (RuntimeHealth says so): no new loads here.
        self.runtime_reachable = True

    def stop_accepting(self) -> None:
        self.accepting = False

    def set_runtime_reachable(self, reachable: bool) -> None:
        self.runtime_reachable = reachable

    # --- loads --------------------------------------------------------------------------

    async def ensure_local(self, model_id: str, record: ModelRecord) -> LocalCopy:
        """A LOADED copy of the model here; concurrent callers share one load."""
        deadline = time.monotonic() + self.load_timeout_s + 30
        while True:
            copy = self.cache.get(model_id)
            if copy is not None and copy.state is not CopyState.UNLOADING:
                await asyncio.shield(copy.ready)
                return copy
            if copy is not None:  # being unloaded: wait until it is gone, then load again
                await self._wait_space(deadline)
                continue
            if not self.accepting:
                raise ShuttingDown("instance is shutting down")
            if not self.runtime_reachable:
                raise RuntimeDown(f"ModelRuntime UNAVAILABLE: runtime unreachable, not loading {model_id} here")
            size = await self.runtime.predict_size(model_id, record.type, record.path, record.key) \
                or self.default_size
            if size > self.cache.model_capacity:
                raise NoCapacity(f"model {model_id} needs {size} bytes, more than the instance capacity "
                                 f"of {self.cache.model_capacity}")
            await self._make_room(size, deadline)
            if self.cache.get(model_id) is not None:
                continue  # someone else started it while we made room
            copy = self.cache.reserve(model_id, size)
            if self._tasks.spawn(self._load(copy, record), f"load:{model_id}") is None:
                await self.cache.release(copy, ShuttingDown("instance is shutting down"))
            await asyncio.shield(copy.ready)
            return copy

    async def _load(self, copy: LocalCopy, record: ModelRecord) -> None:
        model_id = copy.model_id
        queued = time.monotonic()
        try:
            async with self._loading:
                self.metrics.loading_queue_delay.observe((time.monotonic() - queued) * 1000, model_id)
                claimed = await self._claim(model_id, record)
                if claimed is None:
                    raise ModelNotFound(f"model {model_id} was unregistered")
                started = time.monotonic()
                resp = await self.runtime.load(model_id, record.type, record.path, record.key, self.load_timeout_s)
                self.metrics.load_ms.observe((time.monotonic() - started) * 1000, model_id)
                size = resp.sizeInBytes
                if not size:
                    t = time.monotonic()
                    size = await self.runtime.model_size(model_id) or copy.size
                    self.metrics.sizing_ms.observe((time.monotonic() - t) * 1000, model_id)
        except BaseException as e:  # noqa: BLE001 - every failure is recorded, then re-raised if cancel
            await self._load_failed(copy, e)
            if isinstance(e, asyncio.CancelledError):
                raise
            return
        self.cache.resize(copy, size)
        self.metrics.loaded_size.observe(size, model_id)
        log.info("model loaded", model_id=model_id, size=size, ms=int((time.monotonic() - started) * 1000))
        # The registry lists the copy before waiters are released, so a status read right
        # after a request that caused the load already says LOADED.
        try:
            kept = await asyncio.wait_for(
                self.models.update(model_id, lambda r: r and r.loaded_on(self.instance_id, now_ms())),
                CLAIM_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - the store is down: serve anyway, the janitor re-syncs
            log.warning("could not record loaded copy", model_id=model_id, error=str(e) or type(e).__name__)
            kept = record
        self.cache.mark_loaded(copy, resp.maxConcurrency)
        if kept is None:  # unregistered while loading
            self._tasks.spawn(self.unload(copy, "unregistered"), f"unload:{model_id}")
            return
        if self.cache.models_used > self.cache.model_capacity:  # real size exceeded the estimate
            self._tasks.spawn(self._shrink_to_capacity(), "shrink")
        await self._on_loaded(model_id)

    async def _claim(self, model_id: str, record: ModelRecord) -> ModelRecord | None:
        """Mark the load as ours in the registry (None: the model was unregistered). Already
        claimed for us when another path placed the load here: no second write. With the
        store unreachable the load goes ahead unclaimed: a request must not fail on the
        store, and the janitor puts the copy in the record once the store is back."""
        try:
            return await asyncio.wait_for(self.models.update(model_id, lambda r: r and (
                r if self.instance_id in r.loading_in else r.loading_on(self.instance_id, now_ms()))),
                CLAIM_TIMEOUT_S)
        except (StoreUnavailable, StoreError, asyncio.TimeoutError) as e:
            log.warning("store unavailable: loading without a claim in the registry", model_id=model_id,
                        error=str(e) or type(e).__name__)
            return record

    async def _load_failed(self, copy: LocalCopy, e: BaseException) -> None:
        model_id = copy.model_id
        message = _error_text(e)
        if isinstance(e, grpc.aio.AioRpcError) and e.code() is grpc.StatusCode.UNAVAILABLE:
            await self._load_unreachable(copy, message)
            return
        if isinstance(e, asyncio.TimeoutError) or (
                isinstance(e, grpc.aio.AioRpcError) and e.code() is grpc.StatusCode.DEADLINE_EXCEEDED):
            message = f"load of {model_id} timed out after {self.load_timeout_s:.0f}s"
        self.metrics.load_failures.inc()
        log.warning("model load failed", model_id=model_id, error=message)
        not_attempted = isinstance(e, grpc.aio.AioRpcError) and e.code() in (
            grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
        if not isinstance(e, ModelNotFound):
            # Recorded before waiters are released, so what they read next includes it.
            try:
                await self.models.update(model_id, lambda r: r and r.failed_on(self.instance_id, now_ms(), message))
            except Exception as ue:  # noqa: BLE001
                log.warning("could not record load failure", model_id=model_id, error=str(ue))
        await self.cache.release(copy, LoadFailed(message, self.instance_id))
        if isinstance(e, ModelNotFound):
            return
        if not not_attempted:
            # The SPI asks for an unload after a failed or cancelled load, to free partial state.
            try:
                await self.runtime.unload(model_id, timeout_s=30)
            except grpc.aio.AioRpcError:
                pass
        await self._on_failed(model_id, False)

    async def _load_unreachable(self, copy: LocalCopy, message: str) -> None:
        """The runtime could not be reached for the load: a fault of this instance, not of
        the model, so no failure is recorded against it (it would bar this instance for the
        whole load-failure expiry); the claim is dropped and the load goes elsewhere. No new
        loads here until RuntimeHealth sees the runtime reachable (its next check)."""
        model_id = copy.model_id
        self.runtime_reachable = False
        self.metrics.load_failures.inc()
        log.warning("model load failed: runtime unreachable", model_id=model_id, error=message)
        try:
            await self.models.update(model_id, lambda r: r and (
                r.without_copies_on({self.instance_id}) if self.instance_id in r.loading_in else r))
        except Exception as ue:  # noqa: BLE001 - a stale claim is reaped by reconcile_records
            log.warning("could not drop load claim", model_id=model_id, error=str(ue))
        await self.cache.release(copy, RuntimeDown(f"ModelRuntime UNAVAILABLE: {message}"))
        await self._on_failed(model_id, True)

    # --- room ---------------------------------------------------------------------------

    async def _make_room(self, size: int, deadline: float) -> None:
        """Evict LRU copies until `size` fits the model capacity, then wait only until the
        runtime has room for it: the evicted copies' unloads run in the background while
        their space fits the unload buffer (cache.py), so the load does not wait for them."""
        while True:
            victims = self.cache.eviction_candidates(size)
            if victims:
                now = now_ms()
                for v in victims:
                    self.metrics.age_at_eviction.observe(now - v.last_used, v.model_id)
                    self.cache.begin_unload(v)
                    if self._tasks.spawn(self.unload(v, "evicted"), f"unload:{v.model_id}") is None:
                        await self.unload(v, "evicted")  # shutting down: no background tasks
            if victims is not None and self.cache.fits(size):
                return
            await self._wait_space(deadline)

    async def _wait_space(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NoCapacity("no room for the model on this instance: every loaded model is in use or "
                             "was used too recently to evict")
        async with self.cache.space_freed:
            try:
                await asyncio.wait_for(self.cache.space_freed.wait(), min(remaining, 1.0))
            except asyncio.TimeoutError:
                pass  # re-check: a copy may have aged past the churn limit

    async def _shrink_to_capacity(self) -> None:
        victims = self.cache.eviction_candidates(0) or []
        for v in victims:
            self.cache.begin_unload(v)
        await asyncio.gather(*(self.unload(v, "over capacity") for v in victims))

    # --- unloads ------------------------------------------------------------------------

    async def unload(self, copy: LocalCopy, reason: str) -> None:
        """Remove this instance from the model's record, then unload it from the runtime."""
        model_id = copy.model_id
        self.cache.begin_unload(copy)
        try:
            await self.models.update(model_id, lambda r: r and r.without_copies_on({self.instance_id}))
        except Exception as e:  # noqa: BLE001 - the unload itself must still happen
            log.warning("could not update registry on unload", model_id=model_id, error=str(e))
        started = time.monotonic()
        try:
            await self.runtime.unload(model_id)
            self.metrics.unload_ms.observe((time.monotonic() - started) * 1000, model_id)
        except grpc.aio.AioRpcError as e:
            self.metrics.unload_failures.inc()
            log.warning("runtime unload failed", model_id=model_id, error=_error_text(e))
        await self.cache.release(copy)
        log.info("model unloaded", model_id=model_id, reason=reason)

    async def forget(self, copy: LocalCopy) -> None:
        """The runtime no longer has the model (it restarted): drop the copy and its
        registry entry without asking the runtime to unload."""
        self.cache.begin_unload(copy)
        try:
            await self.models.update(copy.model_id, lambda r: r and r.without_copies_on({self.instance_id}))
        except Exception as e:  # noqa: BLE001 - the janitor re-syncs the registry later
            log.warning("could not update registry", model_id=copy.model_id, error=str(e))
        await self.cache.release(copy)

    # --- the registry in step with this instance -----------------------------------------

    def registry_changed(self, changes: list[Change[ModelRecord]]) -> None:
        """A model was unregistered: drop our copy of it."""
        for c in changes:
            if c.new is None:
                copy = self.cache.get(c.id)
                if copy is not None and copy.state is not CopyState.UNLOADING:
                    self._tasks.spawn(self._unload_when_settled(copy, "unregistered"), f"unload:{c.id}")

    async def _unload_when_settled(self, copy: LocalCopy, reason: str) -> None:
        if copy.state is CopyState.LOADING:
            try:
                await asyncio.shield(copy.ready)
            except Exception:  # noqa: BLE001 - a failed load leaves nothing to unload
                return
        await self.unload(copy, reason)

    async def reconcile_records(self) -> None:
        """Records must list exactly the copies this instance holds (after a lease loss or a
        restart under the same instance id they may not)."""
        me = self.instance_id
        for model_id in self.cache.loaded_ids():
            record = self.models.get(model_id)
            if record is not None and me not in record.instance_ids:
                await self.models.update(model_id, lambda r: r and r.loaded_on(me, now_ms()))
        stale_claim_ms = now_ms() - STALE_LOAD_CLAIM_MS
        for model_id, record in self.models.records():
            if self.cache.get(model_id) is not None:
                continue
            if me in record.instance_ids or record.loading_in.get(me, now_ms()) < stale_claim_ms:
                # Listed here but not held: a claim whose load never started, or a copy lost.
                await self.models.update(model_id, lambda r: r and r.without_copies_on({me}))

    async def close(self) -> None:
        self.accepting = False
