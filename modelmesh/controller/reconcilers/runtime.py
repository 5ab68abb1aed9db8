"""Per (namespace, runtime): the runtime Deployment, its replicas (scale to zero with a
grace period) and its HPA; removal for disabled, non-multiModel or deleted runtimes.

A runtime that cannot be deployed (invalid spec, or a Deployment the apiserver rejects) is
reported where users look: the `Valid` condition of a ServingRuntime and a Warning Event on
the (Cluster)ServingRuntime. It is not retried until the runtime or the config changes.
A TLS secret (tls.secretName) that is missing is an error retried with backoff, as the
reference does; what the secret holds decides the trust setting of the pods."""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from modelmesh.controller import events
from modelmesh.controller.context import Context, parse_model
from modelmesh.controller.deployment import MANAGED_BY, RuntimeRef, build_deployment, deployment_name, owner_reference
from modelmesh.controller.hpa import build_hpa
from modelmesh.controller.kube import DEPLOYMENT, SECRET, SERVING_RUNTIME, hpa_kind
from modelmesh.controller.reconcilers.namespace import decode_secret
from modelmesh.controller.runtime_spec import hpa_settings, is_served, validate_runtime
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.runtime")


class TlsSecretMissing(RuntimeError):
    pass


class RuntimeReconciler:
    def __init__(self, ctx: Context, clock) -> None:
        self.ctx = ctx
        self._clock = clock  # loop time; injected so the scale-to-zero timeline is testable
        # (namespace, kind, runtime) -> the problem last recorded as an Event
        self._reported: dict[tuple[str, str, str], tuple[str, str]] = {}

    async def __call__(self, key: tuple[str, str]) -> float | None:
        namespace, name = key
        ctx = self.ctx
        if not ctx.serves(namespace):
            return None
        ref = ctx.runtimes_in(namespace).get(name)
        dep_name = deployment_name(ctx.config.service_name, name)
        if ref is None or not is_served(ref.spec):
            for kind in ("ServingRuntime", "ClusterServingRuntime"):
                self._reported.pop((namespace, kind, name), None)
            await self._remove(namespace, dep_name)
            return None
        errors = validate_runtime(ref.spec, ctx.config.builtin_server_types)
        if errors:
            log.error("invalid ServingRuntime, not deployed", namespace=namespace, runtime=name, errors=errors)
            await self._report(namespace, ref, "InvalidSpec", "; ".join(errors))
            return None

        replicas, requeue = self._replicas(namespace, ref)
        claims = await self._pvc_claims(namespace)
        has_ca = await self._tls_secret_has_ca(namespace) if ctx.config.tls_secret_name else False
        deployment = build_deployment(ref, namespace, ctx.config, replicas, ctx.settings.etcd_secret_name, claims,
                                      has_ca)
        hpa = hpa_settings(ref.annotations)
        if hpa is not None and replicas > 0:
            del deployment["spec"]["replicas"]  # the HPA owns replicas while the runtime is in use
        try:
            await ctx.api.apply(deployment)
        except ApiException as e:
            if not _rejected(e):  # not about the object itself: retried with backoff
                raise
            message = f"the apiserver rejected Deployment {dep_name}: {_status_message(e)}"
            log.error("runtime deployment rejected", namespace=namespace, runtime=name, error=message)
            await self._report(namespace, ref, "DeploymentRejected", message)
            return None
        await self._report(namespace, ref, None, "")
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

    async def _tls_secret_has_ca(self, namespace: str) -> bool:
        """Whether the namespace's TLS secret has a ca.crt. As the reference, a secret that
        cannot be read is an error (retried with backoff) and the Deployment is left as it is."""
        name = self.ctx.config.tls_secret_name
        secret = await self.ctx.api.get(SECRET, name, namespace)
        if secret is None:
            raise TlsSecretMissing(f"unable to access TLS secret '{name}' in namespace {namespace}: not found")
        return "ca.crt" in (secret.get("data") or {})

    async def _remove(self, namespace: str, dep_name: str) -> None:
        existing = await self.ctx.api.get(DEPLOYMENT, dep_name, namespace)
        if existing and (existing["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY:
            await self.ctx.api.delete(DEPLOYMENT, dep_name, namespace)
            log.info("runtime deployment removed", namespace=namespace, deployment=dep_name)
        await self.ctx.api.delete(hpa_kind(self.ctx.hpa_version), dep_name, namespace)

    async def _report(self, namespace: str, ref: RuntimeRef, reason: str | None, message: str) -> None:
        """`reason` None: deployable. Otherwise a Warning Event (once per distinct problem) and,
        on a namespaced runtime, the `Valid` condition False with that reason."""
        obj = self._object(namespace, ref)
        if obj is None:
            return
        key = (namespace, ref.kind, ref.name)
        if reason is None:
            self._reported.pop(key, None)
        elif self._reported.get(key) != (reason, message):
            self._reported[key] = (reason, message)
            await events.record(self.ctx.api, events.warning_event(obj, namespace, reason, message))
        if ref.kind == "ServingRuntime":
            await self._set_valid_condition(obj, reason, message)

    def _object(self, namespace: str, ref: RuntimeRef) -> dict[str, Any] | None:
        if ref.kind == "ServingRuntime":
            watcher, key_ns = self.ctx.runtimes, namespace
        else:
            watcher, key_ns = self.ctx.cluster_runtimes, ""
        obj = watcher.get(key_ns, ref.name) if watcher else None
        return {"apiVersion": ref.api_version, "kind": ref.kind, **obj} if obj is not None else None

    async def _set_valid_condition(self, obj: dict[str, Any], reason: str | None, message: str) -> None:
        current = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
        cond: dict[str, Any] = {"type": "Valid", "status": "True" if reason is None else "False",
                                "reason": reason or "Valid", "message": message or "valid"}
        old = current.get("Valid") or {}
        if all(old.get(k) == v for k, v in cond.items()):
            return
        others = [c for c in current.values() if c.get("type") != "Valid"]
        await self.ctx.api.replace_status(SERVING_RUNTIME, {**obj, "status": {**(obj.get("status") or {}),
                                                                               "conditions": [*others, cond]}})


def _rejected(e: ApiException) -> bool:
    """The apiserver refused the object itself: invalid (422), malformed (400), or a value of
    the wrong type, which server-side apply reports as a 500 on kube-apiserver 1.20."""
    return e.status in (400, 422) or (e.status == 500 and "failed to create typed patch object" in _status_message(e))


def _status_message(e: ApiException) -> str:
    """The apiserver's own explanation (the Status object's message)."""
    try:
        return str(json.loads(e.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{e.status} {e.reason}"
