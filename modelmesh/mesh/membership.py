"""This instance's membership of the mesh: the lease its instance record lives under, the
record's publishing (only when it changed), re-joining after the lease was lost, leaving,
and the leader latch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from modelmesh.kv import KVStore, Lease
from modelmesh.mesh.records import InstanceRecord
from modelmesh.mesh.tables import Table
from modelmesh.mesh.tasks import TaskOwner
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.membership")


class Membership:
    def __init__(self, instance_id: str, store: KVStore, instances: Table[InstanceRecord], tasks: TaskOwner, *,
                 lease_ttl_s: int, leader_key: str, snapshot: Callable[[], InstanceRecord],
                 on_rejoined: Callable[[], Awaitable[None]]) -> None:
        """`snapshot()` describes this instance as it is now; `on_rejoined` runs after a
        re-join (the records may have lost our copies meanwhile)."""
        self.instance_id = instance_id
        self.store = store
        self.instances = instances
        self.tasks = tasks
        self.lease_ttl_s = lease_ttl_s
        self.leader_key = leader_key
        self._snapshot = snapshot
        self._on_rejoined = on_rejoined
        self.lease: Lease | None = None
        self.leaving = False
        self.leader = False

    def record(self) -> InstanceRecord:
        record = self._snapshot()
        return record.replace(shutting_down=True) if self.leaving and not record.shutting_down else record

    @property
    def joined(self) -> bool:
        return self.lease is not None and not self.lease.lost

    async def join(self) -> None:
        self.lease = await self.store.grant_lease(self.lease_ttl_s, on_lost=self._lease_lost)
        await self.publish()

    async def publish(self) -> None:
        """Write the instance record if it changed (and the lease is alive)."""
        record = self.record()
        if self.joined and self.instances.get(self.instance_id) != record:
            await self.instances.put(self.instance_id, record, self.lease)

    async def announce_leaving(self) -> None:
        """Shutting down: other instances stop placing loads here."""
        self.leaving = True
        await self.publish()

    async def leave(self) -> None:
        self.leaving = True
        if self.lease is not None:
            try:
                await self.lease.revoke()
            except Exception:  # noqa: BLE001 - the lease expires anyway
                pass

    async def _lease_lost(self) -> None:
        if self.leaving:
            return
        log.warning("instance lease lost; re-joining", instance=self.instance_id)
        self.tasks.spawn(self._rejoin(), "rejoin")

    async def _rejoin(self) -> None:
        delay = 0.2
        while not self.leaving:
            try:
                self.lease = await self.store.grant_lease(self.lease_ttl_s, on_lost=self._lease_lost)
                await self.instances.put(self.instance_id, self.record(), self.lease)
                await self._on_rejoined()
                log.info("instance re-joined", instance=self.instance_id)
                return
            except Exception as e:  # noqa: BLE001 - the store may still be down
                log.warning("re-join failed; retrying", error=str(e))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def elect(self) -> bool:
        """Take or keep the leader latch (a key under our lease); True while we hold it."""
        if not self.joined:
            self.leader = False
            return False
        ok, current = await self.store.compare_and_swap(self.leader_key, 0, self.instance_id.encode(), self.lease)
        self.leader = ok or (current is not None and current.value == self.instance_id.encode())
        return self.leader
