"""Per (namespace, runtime): the runtime Deployment, its replicas (scale to zero with a
grace period) and its HPA; removal for disabled, non-multiModel or deleted runtimes."""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from modelmesh.controller.context import Context, parse_model
from modelmesh.controller.deployment import MANAGED_BY, RuntimeRef, build_deployment, deployment_name, owner_reference
from modelmesh.controller.hpa import build_hpa
from modelmesh.controller.kube import DEPLOYMENT, SECRET, SERVING_RUNTIME, hpa_kind
from modelmesh.controller.reconcilers.namespace import decode_secret
from modelmesh.controller.runtime_spec import hpa_settings, is_served, validate_runtime
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.runtime")


class RuntimeReconciler:
    def __init__(self, ctx: Context, clock) -> None:
        self.ctx = ctx
        self._clock = clock  # loop time; injected so the scale-to-zero timeline is testable

    async def __call__(self, key: tuple[str, str]) -> float | None:
        namespace, name = key
        ctx = self.ctx
        if not ctx.serves(namespace):
            return None
        ref = ctx.runtimes_in(namespace).get(name)
        dep_name = deployment_name(ctx.config.service_name, name)
        if ref is None or not is_served(ref.spec):
            await self._remove(namespace, dep_name)
            return None
        errors = validate_runtime(ref.spec, ctx.config.builtin_server_types)
        await self._report_validity(namespace, ref, errors)
        if errors:
            log.error("invalid ServingRuntime, not deployed", namespace=namespace, runtime=name, errors=errors)
            return None

        replicas, requeue = self._replicas(namespace, ref)
        claims = await self._pvc_claims(namespace)
        deployment = build_deployment(ref, namespace, ctx.config, replicas, ctx.settings.etcd_secret_name, claims)
        hpa = hpa_settings(ref.annotations)
        if hpa is not None and replicas > 0:
            del deployment["spec"]["replicas"]  # the HPA owns replicas while the runtime is in use
        await ctx.api.apply(deployment)
        hpa_kind_ = hpa_kind(ctx.hpa_version)
        if hpa is not None and replicas > 0:
            lo, hi, metric, target = hpa
            await ctx.api.apply(build_hpa(dep_name, namespace, hpa_kind_.api_version, lo, hi, metric, target,
                                          owner_reference(ref)))
        else:
            await ctx.api.delete(hpa_kind_, dep_name, namespace)
        return requeue

    def _replicas(self, namespace: str, ref: RuntimeRef) -> tuple[int, float | None]:
        ctx = self.ctx
        config = ctx.config
        spec_replicas = ref.spec.get("replicas")
        replicas = int(spec_replicas) if spec_replicas is not None else config.pods_per_runtime
        if not config.scale_to_zero:
            return replicas, None
        key = (namespace, ref.name)
        now = self._clock()
        if ctx.runtime_has_models(namespace, ref.name):
            ctx.model_last_seen[key] = now
            return replicas, None
        seen = ctx.model_last_seen.get(key)
        if seen is None:
            return 0, None  # never had a model since we started: scale to zero at once
        left = config.scale_to_zero_grace_s - (now - seen)
        if left <= 0:
            return 0, None
        return replicas, left + 0.05  # look again when the grace period ends

    async def _pvc_claims(self, namespace: str) -> list[str]:
        """PVCs named in the storage secret (and, with allowAnyPVC, any a model asks for)."""
        ctx = self.ctx
        claims: set[str] = set()
        if ctx.secret_access:
            try:
                secret = await ctx.api.get(SECRET, ctx.config.storage_secret_name, namespace)
            except ApiException as e:
                if e.status != 403:
                    raise
                secret = None
            for raw in decode_secret(secret or {}).values():
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("type") == "pvc" and entry.get("name"):
                    claims.add(str(entry["name"]))
        if ctx.config.allow_any_pvc:
            for kind, obj in ctx.model_objects(namespace):
                spec = parse_model(kind, obj)
                if spec and spec.storage_params.get("type") == "pvc" and spec.storage_params.get("name"):
                    claims.add(spec.storage_params["name"])
        return sorted(claims)

    async def _remove(self, namespace: str, dep_name: str) -> None:
        existing = await self.ctx.api.get(DEPLOYMENT, dep_name, namespace)
        if existing and (existing["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY:
            await self.ctx.api.delete(DEPLOYMENT, dep_name, namespace)
            log.info("runtime deployment removed", namespace=namespace, deployment=dep_name)
        await self.ctx.api.delete(hpa_kind(self.ctx.hpa_version), dep_name, namespace)

    async def _report_validity(self, namespace: str, ref: RuntimeRef, errors: list[str]) -> None:
        """Namespaced runtimes carry a `Valid` condition in their status."""
        if ref.kind != "ServingRuntime":
            return
        obj = self.ctx.runtimes.get(namespace, ref.name) if self.ctx.runtimes else None
        current = {c.get("type"): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
        cond: dict[str, Any] = {"type": "Valid", "status": "False" if errors else "True",
                                "reason": "InvalidSpec" if errors else "Valid",
                                "message": "; ".join(errors) if errors else "valid"}
        old = current.get("Valid") or {}
        if all(old.get(k) == v for k, v in cond.items()):
            return
        if obj is None:
            return
        others = [c for c in current.values() if c.get("type") != "Valid"]
        await self.ctx.api.replace_status(SERVING_RUNTIME, {**obj, "status": {**(obj.get("status") or {}),
                                                                               "conditions": [*others, cond]}})
