"""Leader election on a coordination.k8s.io Lease (`modelmesh-controller-leader-lock`)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from kubernetes_asyncio.client.exceptions import ApiException

from modelmesh.controller.kube import LEASE, KubeApi
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.leader")

LEASE_NAME = "modelmesh-controller-leader-lock"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


class LeaderElector:
    """`await acquire()` returns once we hold the lease; a renew task keeps it and sets
    `lost` if renewing fails for longer than the lease duration."""

    def __init__(self, api: KubeApi, namespace: str, identity: str, lease_s: int = 15, renew_s: float = 5.0,
                 retry_s: float = 2.0) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.retry_s = retry_s
        self.lost = asyncio.Event()
        self._renewer: asyncio.Task | None = None

    async def _try(self) -> bool:
        lease = await self.api.get(LEASE, LEASE_NAME, self.namespace)
        now = _now()
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_s,
                             "acquireTime": _fmt(now), "renewTime": _fmt(now), "leaseTransitions": 0}}
            try:
                await self.api.create(LEASE, body, self.namespace)
                return True
            except ApiException as e:
                if e.status == 409:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or self.lease_s
        if holder and holder != self.identity and renewed and (now - renewed).total_seconds() < duration:
            return False
        if holder != self.identity:
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = _fmt(now)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.lease_s, renewTime=_fmt(now))
        lease["spec"] = spec
        try:
            await self.api.replace(LEASE, lease)  # resourceVersion makes this a compare-and-swap
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise

    async def acquire(self) -> None:
        while True:
            try:
                if await self._try():
                    log.info("leader lease acquired", lease=LEASE_NAME, identity=self.identity)
                    self._renewer = asyncio.create_task(self._renew(), name="leader-renew")
                    return
            except ApiException as e:
                log.warning("leader election attempt failed", error=str(e)[:200])
            await asyncio.sleep(self.retry_s)  # the lease is held by another controller

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                if await self._try():
                    last_ok = loop.time()
                    continue
                log.error("leader lease taken by another controller")
                self.lost.set()
                return
            except Exception as e:  # noqa: BLE001
                log.warning("leader lease renew failed", error=str(e)[:200])
            if loop.time() - last_ok > self.lease_s:
                self.lost.set()
                return

    async def release(self) -> None:
        if self._renewer:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            try:
                await self.api.merge_patch(LEASE, LEASE_NAME, {"spec": {"holderIdentity": None}}, self.namespace)
            except Exception:  # noqa: BLE001 - best effort; the lease expires anyway
                pass
