"""Per served namespace: tc-config, the `modelmesh-serving` Service (+ ServiceMonitor) and
the namespace's copy of the etcd secret."""

from __future__ import annotations

import base64
from typing import Any

from modelmesh.controller import namespace_objects as objs
from modelmesh.controller.context import Context
from modelmesh.controller.deployment import MANAGED_BY
from modelmesh.controller.kube import CONFIG_MAP, DEPLOYMENT, SECRET, SERVICE, SERVICE_MONITOR, hpa_kind
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.namespace")


class NamespaceReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, namespace: str) -> float | None:
        ctx = self.ctx
        if not ctx.serves(namespace):
            await self._leave(namespace)
            return None
        config = ctx.config
        runtimes = [(name, ref.spec) for name, ref in ctx.valid_served_runtimes(namespace).items()]
        await ctx.api.apply(objs.tc_config(namespace, runtimes, config))
        await self._service(namespace)
        await self._etcd_secret(namespace)
        await self._service_monitor(namespace)
        return None

    async def _leave(self, namespace: str) -> None:
        """A namespace that is not (or no longer) served keeps nothing the controller made:
        runtime Deployments and HPAs, tc-config, the Service, the etcd secret copy."""
        ctx = self.ctx
        kinds = [DEPLOYMENT, hpa_kind(ctx.hpa_version), CONFIG_MAP, SERVICE]
        if ctx.secret_access:
            kinds.append(SECRET)
        if ctx.has_service_monitor:
            kinds.append(SERVICE_MONITOR)
        for kind in kinds:
            items, _ = await ctx.api.list(kind, namespace, f"app.kubernetes.io/managed-by={MANAGED_BY}")
            for obj in items:
                await ctx.api.delete(kind, obj["metadata"]["name"], namespace)
                log.info("removed from a namespace no longer served", namespace=namespace, kind=kind.kind,
                         name=obj["metadata"]["name"])

    async def _service(self, namespace: str) -> None:
        config = self.ctx.config
        desired = objs.service(namespace, config)
        existing = await self.ctx.api.get(SERVICE, config.service_name, namespace)
        if existing is not None:
            headless = (existing.get("spec") or {}).get("clusterIP") == "None"
            if headless != config.headless_service:
                # clusterIP is immutable: switching headless on/off needs a new Service.
                await self.ctx.api.delete(SERVICE, config.service_name, namespace)
        await self.ctx.api.apply(desired)

    async def _etcd_secret(self, namespace: str) -> None:
        ctx = self.ctx
        own = ctx.settings.namespace
        if ctx.settings.namespace_scope or namespace == own or not ctx.secret_access:
            return
        name = ctx.settings.etcd_secret_name
        source = await ctx.api.get(SECRET, name, own)
        if source is None:
            log.warning("etcd secret missing in the controller namespace", secret=name, namespace=own)
            return
        try:
            copy = objs.etcd_secret_copy(source, name, namespace)
        except ValueError as e:
            log.error("etcd secret is invalid", secret=name, error=str(e))
            return
        await ctx.api.apply(copy)

    async def _service_monitor(self, namespace: str) -> None:
        ctx = self.ctx
        if not ctx.has_service_monitor:
            return
        config = ctx.config
        if config.metrics_enabled and not config.disable_prometheus_operator:
            await ctx.api.apply(objs.service_monitor(namespace, config))
        else:
            await ctx.api.delete(SERVICE_MONITOR, objs.SERVICE_MONITOR, namespace)


def decode_secret(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
