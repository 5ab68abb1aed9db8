"""Predictors and InferenceServices (ModelMesh mode): register the vmodel in the mesh and
keep the CR status in step with it (controller.md state machine).

Deletion uses a finalizer: the vmodel is deleted in the mesh before the CR goes, even when
the controller was down at the time of the delete (a delete event alone could be missed).
"""

from __future__ import annotations

from typing import Any

import grpc
from kubernetes_asyncio.client.exceptions import ApiException

from modelmesh.controller.context import ISVC_KIND, PREDICTOR_KIND, Context
from modelmesh.controller.kube import DEPLOYMENT, INFERENCE_SERVICE, PREDICTOR
from modelmesh.controller.meshclient import MeshRejected, MeshUnavailable
from modelmesh.modelspec.model_info import concrete_model_id, model_info_key, type_label
from modelmesh.modelspec.spec import (
    InvalidSpec,
    is_modelmesh_isvc,
    parse_inference_service,
    parse_predictor,
)
from modelmesh.modelspec.status import (
    FailureInfo,
    FailureReason,
    ModelState,
    ModelStatus,
    TransitionStatus,
    now_rfc3339,
    status_from_vmodel,
)
from modelmesh.modelspec.status_fields import ServingEndpoints, isvc_status, predictor_status
from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_mesh_pb2 as mm

log = get_logger("modelmesh.controller.model")

FINALIZER = "modelmesh.serving.kserve.io/vmodel"
ModelKey = tuple[str, str, str]  # (kind, namespace, name)


class ModelReconciler:
    def __init__(self, ctx: Context, poll_min_s: float = 0.25, poll_max_s: float = 5.0) -> None:
        self.ctx = ctx
        self._poll_min = poll_min_s
        self._poll_max = poll_max_s
        self._polls: dict[ModelKey, int] = {}

    def _watcher(self, kind: str):
        return self.ctx.predictors if kind == PREDICTOR_KIND else self.ctx.isvcs

    async def __call__(self, key: ModelKey) -> float | None:
        kind, namespace, name = key
        watcher = self._watcher(kind)
        obj = watcher.get(namespace, name) if watcher else None
        if obj is None or not self.ctx.serves(namespace):
            self._polls.pop(key, None)
            return None
        if kind == ISVC_KIND and not is_modelmesh_isvc(obj):
            return None
        owner = "ksp" if kind == PREDICTOR_KIND else "isvc"
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                await self._delete_vmodel(namespace, name, owner)
                finalizers.remove(FINALIZER)
                await self.ctx.api.merge_patch(
                    self._kind(kind), name,
                    {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}, namespace)
            self._polls.pop(key, None)
            return None
        if FINALIZER not in finalizers:
            patched = await self.ctx.api.merge_patch(
                self._kind(kind), name,
                {"metadata": {"finalizers": [*finalizers, FINALIZER], "resourceVersion": meta["resourceVersion"]}},
                namespace)
            if patched is None:
                return None
            obj = patched

        try:
            spec = parse_predictor(obj) if kind == PREDICTOR_KIND else parse_inference_service(obj)
        except InvalidSpec as e:
            await self._write_status(kind, obj, ModelStatus.invalid_spec(e.reason, e.message))
            return None
        label = type_label(spec)
        model_id = concrete_model_id(spec)
        catalog = self.ctx.catalog(namespace)
        if not _has_status(kind, obj):
            obj = await self._write_status(kind, obj, ModelStatus()) or obj  # Pending first

        info: mm.VModelStatusInfo | None = None
        retry: float | None = None
        status: ModelStatus | None = None
        if catalog.names_unserved_runtime(label):
            # A runtime we do not deploy (not multiModel, or disabled): the model stays Pending;
            # a change of that runtime requeues it.
            await self._write_status(kind, obj, ModelStatus())
            return None
        else:
            try:
                if catalog.unsatisfiable(label) is None:
                    info = await self.ctx.mesh.set_vmodel(namespace, mm.SetVModelRequest(
                        vModelId=name, owner=owner, targetModelId=model_id,
                        modelInfo=mm.ModelInfo(type=label, path=spec.path, key=model_info_key(spec)),
                        autoDeleteTargetModel=True, loadNow=True))
                else:
                    info = await self.ctx.mesh.get_vmodel_status(namespace, name, owner)
            except MeshUnavailable as e:
                log.info("mesh not reachable yet", namespace=namespace, name=name, error=str(e))
                retry = self._next_poll(key)
            except MeshRejected as e:
                if e.code != grpc.StatusCode.NOT_FOUND:
                    status = ModelStatus(
                        active=ModelState.FAILED, transition=TransitionStatus.UP_TO_DATE,
                        failure=FailureInfo(FailureReason.MODEL_LOAD_FAILED, str(e), model_id, time=now_rfc3339()))
        if status is None:
            status = status_from_vmodel(info, model_id, label, catalog)
        await self._write_status(kind, obj, status)
        if retry is not None:
            return retry
        if _settled(status):
            self._polls.pop(key, None)
            return None
        return self._next_poll(key)

    def _next_poll(self, key: ModelKey) -> float:
        """While a load is in flight: poll with backoff (the etcd watch, when on, wakes us sooner)."""
        n = self._polls.get(key, 0)
        self._polls[key] = n + 1
        delay = min(self._poll_max, self._poll_min * 2 ** n)
        return max(delay, 30.0) if self.ctx.kv_watch_active else delay

    def _kind(self, kind: str):
        return PREDICTOR if kind == PREDICTOR_KIND else INFERENCE_SERVICE

    async def _delete_vmodel(self, namespace: str, name: str, owner: str) -> None:
        try:
            await self.ctx.mesh.delete_vmodel(namespace, name, owner)
            log.info("vmodel deleted", namespace=namespace, vmodel=name)
        except MeshRejected as e:
            if e.code != grpc.StatusCode.NOT_FOUND:
                raise
        except MeshUnavailable:
            if await self._any_runtime_deployment(namespace):
                raise  # a mesh may hold the vmodel: retry with backoff until it answers
            log.warning("no mesh in namespace, dropping finalizer", namespace=namespace, vmodel=name)

    async def _any_runtime_deployment(self, namespace: str) -> bool:
        svc = self.ctx.config.service_name
        items, _ = await self.ctx.api.list(
            DEPLOYMENT, namespace, f"app.kubernetes.io/managed-by=modelmesh-controller,modelmesh-service={svc}")
        return bool(items)

    def _endpoints(self, namespace: str) -> ServingEndpoints:
        c = self.ctx.config
        host = f"{c.service_name}.{namespace}"
        http = f"{'https' if c.tls_secret_name else 'http'}://{host}:{c.rest_proxy_port}" if c.rest_proxy_enabled \
            else ""
        return ServingEndpoints(grpc=f"grpc://{host}:{c.service_port}", http=http)

    async def _write_status(self, kind: str, obj: dict[str, Any], status: ModelStatus) -> dict[str, Any] | None:
        try:
            return await self._put_status(kind, obj, status)
        except ApiException as e:
            if e.status != 409:
                raise
        # Our copy was stale (the CR changed meanwhile): once more on a fresh read.
        fresh = await self.ctx.api.get(self._kind(kind), obj["metadata"]["name"], obj["metadata"]["namespace"])
        return None if fresh is None else await self._put_status(kind, fresh, status)

    async def _put_status(self, kind: str, obj: dict[str, Any], status: ModelStatus) -> dict[str, Any] | None:
        meta = obj["metadata"]
        old = obj.get("status") or {}
        if kind == PREDICTOR_KIND:
            new = predictor_status(status, self._endpoints(meta["namespace"]))
        else:
            new = isvc_status(status, self._endpoints(meta["namespace"]), old)
        new = _keep_times(old, new)
        if _same(old, new):
            return None
        status = _without_nulls({**old, **new})  # a None in `new` removes that field
        return await self.ctx.api.replace_status(self._kind(kind), {**obj, "status": status})


def _has_status(kind: str, obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return bool(status.get("activeModelState") if kind == PREDICTOR_KIND else status.get("modelStatus"))


def _settled(status: ModelStatus) -> bool:
    if status.waiting_for_runtime or status.target == ModelState.LOADING:
        return False
    return status.active in (ModelState.LOADED, ModelState.FAILED, ModelState.STANDBY)


def _failure_of(status: dict[str, Any]) -> dict[str, Any] | None:
    return status.get("lastFailureInfo") or (status.get("modelStatus") or {}).get("lastFailureInfo")


def _keep_times(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Keep the old failure time when the failure itself did not change (no status churn)."""
    old_f, new_f = _failure_of(old), _failure_of(new)
    if old_f and new_f and {k: v for k, v in old_f.items() if k != "time"} == \
            {k: v for k, v in new_f.items() if k != "time"} and "time" in old_f:
        new_f["time"] = old_f["time"]
    return new


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None and v != "" and k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _without_nulls(value: Any) -> Any:
    """Drop None (field removed) and "" (kube-apiserver 1.20 as built here rejects empty
    strings in custom resources as null; an absent string field reads as "")."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(_strip(old.get(k)) == _strip(v) for k, v in new.items())

