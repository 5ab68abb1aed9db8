"""Kubernetes Events the controller records on the objects users look at (`kubectl describe`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from modelmesh.controller.kube import EVENT, KubeApi
from modelmesh.modelspec.status import now_rfc3339
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.events")


def warning_event(involved: Mapping[str, Any], namespace: str, reason: str, message: str) -> dict[str, Any]:
    """A Warning Event about `involved` (an object as read from the API), in `namespace`
    (a cluster-scoped object's events go to the namespace the problem is in)."""
    meta = involved.get("metadata") or {}
    ref = {"apiVersion": involved.get("apiVersion", "v1"), "kind": involved["kind"], "name": meta["name"],
           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    now = now_rfc3339()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
        "involvedObject": ref, "reason": reason, "message": message[:1024], "type": "Warning",
        "source": {"component": "modelmesh-controller"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


async def record(api: KubeApi, event: Mapping[str, Any]) -> None:
    """Create the Event; a failure (e.g. no RBAC for events) is logged, never raised."""
    try:
        await api.create(EVENT, event, event["metadata"]["namespace"])
    except ApiException as e:
        log.warning("cannot record event", reason=event.get("reason"), error=str(e)[:200])
