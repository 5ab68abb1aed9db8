"""Periodic upkeep of one instance. Every second: watch the runtime connection, measure
request rates, publish the instance record, add a copy of hot models. Every janitor period:
drop idle extra copies, keep the registry truthful about our copies, retry models no
instance could take, finish stuck vmodel transitions, close channels to departed peers and
(as leader) reap records of instances that are gone.

Each job is a small method over the collaborators given; loads are started through the
coordinator and never awaited here (a load must not stall the record publish or the
runtime health check)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from modelmesh.kv import Change
from modelmesh.mesh.cache import LocalCache, now_ms
from modelmesh.mesh.channels import PeerChannels
from modelmesh.mesh.cluster import ClusterView
from modelmesh.mesh.coordinator import LoadCoordinator
from modelmesh.mesh.health import RuntimeHealth
from modelmesh.mesh.loader import ModelLoader
from modelmesh.mesh.membership import Membership
from modelmesh.mesh.rates import RequestRates
from modelmesh.mesh.records import InstanceRecord, ModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.mesh.tasks import TaskOwner
from modelmesh.mesh.transitions import VModelTransitions
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.janitor")

PUBLISH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class JanitorSettings:
    period_s: float  # MM_JANITOR_FREQ_SECS
    scaleup_rpm_threshold: int
    reap_delay_ms: int


class Janitor:
    def __init__(self, instance_id: str, settings: JanitorSettings, *, cache: LocalCache,
                 models: Table[ModelRecord], instances: Table[InstanceRecord], cluster: ClusterView,
                 loader: ModelLoader, coordinator: LoadCoordinator, transitions: VModelTransitions,
                 membership: Membership, health: RuntimeHealth, rates: RequestRates, peers: PeerChannels,
                 tasks: TaskOwner) -> None:
        self.instance_id = instance_id
        self.settings = settings
        self.cache = cache
        self.models = models
        self.cluster = cluster
        self.loader = loader
        self.coordinator = coordinator
        self.transitions = transitions
        self.membership = membership
        self.health = health
        self.rates = rates
        self.peers = peers
        self.tasks = tasks
        self._dead_since: dict[str, int] = {}
        self._departed_endpoints: set[str] = set()
        instances.on_change(self._instances_changed)

    async def run(self) -> None:
        next_sweep = time.monotonic() + self.settings.period_s
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            try:
                await self.tick()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.settings.period_s
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - upkeep must keep running (e.g. store briefly down)
                log.warning("janitor pass failed", error=str(e))

    async def tick(self) -> None:
        """The every-second part: nothing here waits for a load."""
        await self.health.check()
        self.rates.measure()
        await self.membership.publish()
        for model_id in self.rates.hot_models(self.settings.scaleup_rpm_threshold):
            self.coordinator.add_copy(model_id, "hot")

    def _instances_changed(self, changes: list[Change[InstanceRecord]]) -> None:
        # A new instance may make pending loads possible (e.g. a runtime of the right type joined).
        if any(c.old is None and c.new is not None for c in changes):
            self.tasks.spawn(self.coordinator.retry_unplaceable(), "retry-unplaceable")

    # --- periodic sweep -------------------------------------------------------------------

    async def sweep(self) -> None:
        await self.drop_idle_extra_copies()
        await self.loader.reconcile_records()
        await self.coordinator.retry_unplaceable()
        await self.transitions.complete_stuck()
        await self.close_departed_channels()
        if await self.membership.elect():
            await self.reap_departed_instances()

    async def drop_idle_extra_copies(self) -> None:
        me = self.instance_id
        idle_ms = int(self.settings.period_s * 2000)
        now = now_ms()
        live = self.cluster.live()
        for copy in self.cache.copies():
            if not copy.serving or copy.inflight or now - copy.last_used < idle_ms:
                continue
            record = self.models.get(copy.model_id)
            if record is None:
                continue
            others = {i: t for i, t in record.instance_ids.items() if i != me and i in live}
            if not others:
                continue
            mine = record.instance_ids.get(me, now)
            # Only the younger copy goes, so two instances never drop the last two copies at once.
            if any((t, i) < (mine, me) for i, t in others.items()):
                await self.loader.unload(copy, "idle extra copy")

    async def close_departed_channels(self) -> None:
        """Close channels to endpoints no live instance has, once they stayed gone for a
        whole period (a record briefly missing, e.g. across an etcd restart, keeps its channel)."""
        live = {inst.endpoint for inst in self.cluster.live().values()}
        departed = {e for e in self.peers.endpoints() if e not in live}
        for endpoint in departed & self._departed_endpoints:
            log.info("closing the channel to a departed peer", endpoint=endpoint)
            await self.peers.drop(endpoint)
        self._departed_endpoints = departed - self._departed_endpoints

    async def reap_departed_instances(self) -> None:
        live = self.cluster.live()
        now = now_ms()
        gone: set[str] = set()
        for model_id, record in self.models.records():
            for iid in (*record.instance_ids, *record.loading_in):
                if iid not in live:
                    since = self._dead_since.setdefault(iid, now)
                    if now - since >= self.settings.reap_delay_ms:
                        gone.add(iid)
        for iid in list(self._dead_since):
            if iid in live:
                del self._dead_since[iid]
        if not gone:
            return
        log.info("reaping records of departed instances", instances=sorted(gone))
        for model_id, record in self.models.records():
            if gone & (set(record.instance_ids) | set(record.loading_in)):
                await self.models.update(model_id, lambda r: r and r.without_copies_on(gone))
