"""A thin async Kubernetes REST layer over kubernetes_asyncio's ApiClient, on plain dicts.

One code path for every kind (built-in or custom): get, list, watch, server-side apply
with our field manager, merge patches (status included) and delete. Working on dicts keeps
the reconcilers free of generated model classes and lets SSA send exactly what we own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

FIELD_MANAGER = "modelmesh-controller"


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


GROUP = "serving.kserve.io"
SERVING_RUNTIME = Kind(GROUP, "v1alpha1", "servingruntimes", "ServingRuntime")
CLUSTER_SERVING_RUNTIME = Kind(GROUP, "v1alpha1", "clusterservingruntimes", "ClusterServingRuntime", False)
PREDICTOR = Kind(GROUP, "v1alpha1", "predictors", "Predictor")
INFERENCE_SERVICE = Kind(GROUP, "v1beta1", "inferenceservices", "InferenceService")
NAMESPACE = Kind("", "v1", "namespaces", "Namespace", False)
CONFIG_MAP = Kind("", "v1", "configmaps", "ConfigMap")
SECRET = Kind("", "v1", "secrets", "Secret")
SERVICE = Kind("", "v1", "services", "Service")
ENDPOINTS = Kind("", "v1", "endpoints", "Endpoints")
DEPLOYMENT = Kind("apps", "v1", "deployments", "Deployment")
EVENT = Kind("", "v1", "events", "Event")
LEASE = Kind("coordination.k8s.io", "v1", "leases", "Lease")
CRD = Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
SERVICE_MONITOR = Kind("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor")


def hpa_kind(version: str) -> Kind:
    return Kind("autoscaling", version, "horizontalpodautoscalers", "HorizontalPodAutoscaler")


class Gone(Exception):
    """A watch's resourceVersion is too old (HTTP 410): list again."""


class KubeApi:
    def __init__(self, api_client: ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.client = api_client
        self.field_manager = field_manager

    async def _call(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None,
                    content_type: str = "application/json", timeout: float | None = 30) -> Any:
        return await self.client.call_api(
            path, method, query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"}, body=body,
            response_types_map={200: "object", 201: "object", 202: "object"}, auth_settings=["BearerToken"],
            _return_http_data_only=True, _request_timeout=timeout,
        )

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return await self._call("GET", kind.path(namespace, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def list(self, kind: Kind, namespace: str | None = None,
                   label_selector: str = "") -> tuple[list[dict[str, Any]], str]:
        query = {"labelSelector": label_selector} if label_selector else {}
        data = await self._call("GET", kind.path(namespace), query=query)
        items = data.get("items") or []
        for item in items:  # list items carry no kind/apiVersion
            item.setdefault("kind", kind.kind)
            item.setdefault("apiVersion", kind.api_version)
        return items, data["metadata"]["resourceVersion"]

    async def watch(self, kind: Kind, resource_version: str, namespace: str | None = None,
                    timeout_s: int = 300, label_selector: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) until the server ends the watch; raises Gone on 410."""
        query = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_s),
                 "allowWatchBookmarks": "true"}
        if label_selector:
            query["labelSelector"] = label_selector
        resp = await self.client.call_api(
            kind.path(namespace), "GET", query_params=list(query.items()),
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
            _preload_content=False, _request_timeout=timeout_s + 30,
        )
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message", "gone"))
                    raise ApiException(status=obj.get("code", 500), reason=obj.get("message", "watch error"))
                yield event["type"], obj
        finally:
            resp.release()

    async def apply(self, obj: Mapping[str, Any], sub: str | None = None) -> dict[str, Any]:
        """Server-side apply of `obj` (created when absent), owned by our field manager."""
        kind = _kind_of(obj)
        meta = obj["metadata"]
        return await self._call(
            "PATCH", kind.path(meta.get("namespace"), meta["name"], sub), body=dict(obj),
            query={"fieldManager": self.field_manager, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch(self, kind: Kind, name: str, body: Mapping[str, Any], namespace: str | None = None,
                          sub: str | None = None) -> dict[str, Any] | None:
        try:
            return await self._call("PATCH", kind.path(namespace, name, sub), body=dict(body),
                                    content_type="application/merge-patch+json")
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def create(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return await self._call("POST", kind.path(namespace), body=dict(obj))

    async def replace(self, kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return await self._call("PUT", kind.path(meta.get("namespace"), meta["name"]), body=dict(obj))

    async def replace_status(self, kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """PUT of the status subresource (optimistic: 409 when `obj` is stale). Merge patches
        are avoided for status: kube-apiserver 1.20 turns "" into null in them."""
        meta = obj["metadata"]
        try:
            return await self._call("PUT", kind.path(meta.get("namespace"), meta["name"], "status"), body=dict(obj))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        try:
            await self._call("DELETE", kind.path(namespace, name),
                             body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    async def served_versions(self, group: str) -> list[str]:
        """API versions the server offers for `group` (empty when the group is unknown)."""
        try:
            data = await self._call("GET", f"/apis/{group}")
        except ApiException as e:
            if e.status == 404:
                return []
            raise
        return [v["version"] for v in data.get("versions") or []]

    async def has_resource(self, group: str, version: str, plural: str) -> bool:
        try:
            data = await self._call("GET", f"/apis/{group}/{version}")
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in data.get("resources") or [])


_KINDS = {k.kind: k for k in (SERVING_RUNTIME, CLUSTER_SERVING_RUNTIME, PREDICTOR, INFERENCE_SERVICE, NAMESPACE,
                              CONFIG_MAP, SECRET, SERVICE, ENDPOINTS, DEPLOYMENT, LEASE, SERVICE_MONITOR)}


def _kind_of(obj: Mapping[str, Any]) -> Kind:
    kind = obj["kind"]
    if kind == "HorizontalPodAutoscaler":
        return hpa_kind(obj["apiVersion"].split("/", 1)[1])
    return _KINDS[kind]
