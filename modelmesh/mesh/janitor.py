"""Periodic upkeep of one instance: publish its record, scale hot models to a second copy,
drop idle extra copies, keep the registry truthful, and (as leader) reap records of
instances that are gone."""

from __future__ import annotations

import asyncio
import time

import grpc
from typing import TYPE_CHECKING

from modelmesh.mesh.cache import now_ms
from modelmesh.mesh.placement import choose_instance
from modelmesh.mesh.records import NO_INSTANCE
from modelmesh.observability.logging import get_logger

if TYPE_CHECKING:
    from modelmesh.mesh.instance import MeshInstance

log = get_logger("modelmesh.mesh.janitor")

PUBLISH_INTERVAL_S = 1.0
STALE_LOAD_CLAIM_MS = 30_000  # a load claimed for this instance that never started


class Janitor:
    def __init__(self, mesh: "MeshInstance") -> None:
        self.mesh = mesh
        self.rpm = 0
        self.model_rpm: dict[str, int] = {}
        self._window_start = time.monotonic()
        self._dead_since: dict[str, int] = {}
        self.leader = False

    async def run(self) -> None:
        period = self.mesh.settings.janitor_freq_secs
        next_sweep = time.monotonic() + period
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            try:
                await self._check_runtime()
                self._measure_rates()
                await self.mesh.publish()
                await self._scale_up_hot_models()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + period
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - upkeep must keep running (e.g. store briefly down)
                log.warning("janitor pass failed", error=str(e))

    # --- runtime health -------------------------------------------------------------------

    async def _check_runtime(self) -> None:
        """Watch the connection to the runtime (no RPC: runtimeStatus purges models). When it
        is lost the instance takes no new loads; when it comes back the runtime has
        restarted, so after a fresh handshake every copy here is gone and is forgotten."""
        mesh = self.mesh
        states = {mesh.runtime.channel.get_state(try_to_connect=True),
                  mesh.serving.channel.get_state(try_to_connect=True)}
        down = grpc.ChannelConnectivity.TRANSIENT_FAILURE in states or grpc.ChannelConnectivity.SHUTDOWN in states
        if down and mesh.runtime_healthy:
            log.warning("runtime unreachable: taking no new loads", runtime=mesh.runtime.target)
            mesh.runtime_healthy = False
            await mesh.publish()
        elif not down and not mesh.runtime_healthy and grpc.ChannelConnectivity.READY in states:
            log.info("runtime reachable again: re-doing the handshake", runtime=mesh.runtime.target)
            await mesh.runtime.wait_ready(mesh.settings.runtime_poll_s, mesh.settings.runtime_startup_timeout_s)
            for copy in mesh.cache.copies():
                await mesh.loader.forget(copy)
            mesh.runtime_healthy = True
            await mesh.publish()

    # --- request rates and extra copies ---------------------------------------------------

    def _measure_rates(self) -> None:
        elapsed = time.monotonic() - self._window_start
        if elapsed < 5:
            return
        counts = self.mesh.router.requests_by_model
        self.mesh.router.requests_by_model = {}
        self._window_start = time.monotonic()
        self.model_rpm = {m: int(n * 60 / elapsed) for m, n in counts.items()}
        self.rpm = sum(self.model_rpm.values())

    async def _scale_up_hot_models(self) -> None:
        mesh = self.mesh
        threshold = mesh.settings.scaleup_rpm_threshold
        for model_id, rpm in list(self.model_rpm.items()):
            if rpm < threshold:
                continue
            record = mesh.models.get(model_id)
            if record is None or len(mesh.live_holders(record)) >= 2:
                continue
            holders = set(mesh.live_holders(record))
            target = choose_instance(record.type, mesh.default_size, mesh.instances.items(), mesh.constraints,
                                     mesh.id, exclude=holders | set(record.failed_in))
            if target is not None:
                log.info("adding a copy of a hot model", model_id=model_id, rpm=rpm, target=target)
                if target == mesh.id:
                    await mesh._load_in_background(model_id)
                else:
                    await mesh._ask_peer_to_load(target, model_id)
            self.model_rpm[model_id] = 0  # once per window

    async def _drop_idle_extra_copies(self) -> None:
        mesh = self.mesh
        idle_ms = int(mesh.settings.janitor_freq_secs * 2000)
        now = now_ms()
        live = mesh.instances.items()
        for copy in mesh.cache.copies():
            if not copy.serving or copy.inflight or now - copy.last_used < idle_ms:
                continue
            record = mesh.models.get(copy.model_id)
            if record is None:
                continue
            others = {i: t for i, t in record.instance_ids.items() if i != mesh.id and i in live}
            if not others:
                continue
            mine = record.instance_ids.get(mesh.id, now)
            # Only the younger copy goes, so two instances never drop the last two copies at once.
            if any((t, i) < (mine, mesh.id) for i, t in others.items()):
                await mesh.loader.unload(copy, "idle extra copy")

    # --- periodic sweep -------------------------------------------------------------------

    async def sweep(self) -> None:
        await self._drop_idle_extra_copies()
        await self.reconcile_own_copies()
        await self.retry_unplaceable()
        await self._complete_stuck_transitions()
        await self._elect()
        if self.leader:
            await self._reap_departed_instances()

    async def reconcile_own_copies(self) -> None:
        """Records must list exactly the copies this instance holds (after a lease loss or a
        restart under the same instance id they may not)."""
        mesh = self.mesh
        held = set(mesh.cache.loaded_ids())
        for model_id in held:
            record = mesh.models.get(model_id)
            if record is not None and mesh.id not in record.instance_ids:
                await mesh.models.update(model_id, lambda r: r and r.loaded_on(mesh.id, now_ms()))
        stale_claim_ms = now_ms() - STALE_LOAD_CLAIM_MS
        for model_id, record in list(mesh.models.view.items()):
            if mesh.cache.get(model_id) is not None:
                continue
            if mesh.id in record.instance_ids or record.loading_in.get(mesh.id, now_ms()) < stale_claim_ms:
                # Listed here but not held: a claim whose load never started, or a copy lost.
                await mesh.models.update(model_id, lambda r: r and r.without_copies_on({mesh.id}))

    async def retry_unplaceable(self) -> None:
        mesh = self.mesh
        for model_id, record in list(mesh.models.view.items()):
            if NO_INSTANCE in record.failed_in:
                await mesh.ensure_loaded_somewhere(model_id)

    async def _complete_stuck_transitions(self) -> None:
        for vid, vm in list(self.mesh.vmodels.items().items()):
            if vm.transitioning:
                await self.mesh.transitions.complete(vm.target_model)

    async def _elect(self) -> None:
        mesh = self.mesh
        key = mesh.prefix + "leaderLatch/leader"
        if mesh.lease is None or mesh.lease.lost:
            self.leader = False
            return
        ok, current = await mesh.store.compare_and_swap(key, 0, mesh.id.encode(), mesh.lease)
        self.leader = ok or (current is not None and current.value == mesh.id.encode())

    async def _reap_departed_instances(self) -> None:
        mesh = self.mesh
        live = mesh.instances.items()
        now = now_ms()
        gone: set[str] = set()
        for model_id, record in list(mesh.models.view.items()):
            for iid in (*record.instance_ids, *record.loading_in):
                if iid not in live:
                    since = self._dead_since.setdefault(iid, now)
                    if now - since >= mesh.settings.reap_delay_ms:
                        gone.add(iid)
        for iid in list(self._dead_since):
            if iid in live:
                del self._dead_since[iid]
        if not gone:
            return
        log.info("reaping records of departed instances", instances=sorted(gone))
        for model_id, record in list(mesh.models.view.items()):
            if gone & (set(record.instance_ids) | set(record.loading_in)):
                await mesh.models.update(model_id, lambda r: r and r.without_copies_on(gone))
