"""HorizontalPodAutoscaler for a runtime Deployment, from the runtime's annotations."""

from __future__ import annotations

from typing import Any

from modelmesh.controller.deployment import MANAGED_BY


def build_hpa(name: str, namespace: str, api_version: str, min_replicas: int, max_replicas: int, metric: str,
              target_percent: int, owner: dict[str, Any]) -> dict[str, Any]:
    """autoscaling/v2 (v2beta2 on servers older than 1.23: same shape)."""
    return {
        "apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}, "ownerReferences": [owner]},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": metric, "target": {"type": "Utilization", "averageUtilization": target_percent}}}],
        },
    }
