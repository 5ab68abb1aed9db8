"""ModelStatus -> the status objects of Predictor (v1alpha1) and InferenceService (v1beta1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelmesh.modelspec.status import ModelStatus, now_rfc3339


@dataclass(frozen=True)
class ServingEndpoints:
    """Where clients reach the models of a namespace (the `modelmesh-serving` Service)."""

    grpc: str  # e.g. grpc://modelmesh-serving.ns:8033
    http: str = ""  # REST proxy, empty when disabled


def predictor_status(status: ModelStatus, endpoints: ServingEndpoints) -> dict[str, Any]:
    failure = status.failure
    return {
        "available": status.available,
        "activeModelState": status.active.value,
        "targetModelState": status.target.value,
        "transitionStatus": status.transition.value,
        "lastFailureInfo": None if failure is None else {
            k: v for k, v in {
                "location": failure.location, "reason": failure.reason.value, "message": failure.message,
                "modelId": failure.model_id, "time": failure.time,
            }.items() if v
        },
        "grpcEndpoint": endpoints.grpc,
        "httpEndpoint": endpoints.http,
        "totalCopies": status.total_copies,
        "failedCopies": status.failed_copies,
    }


def _condition(kind: str, ok: bool, previous: Mapping[str, Mapping[str, Any]], reason: str = "") -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(kind) or {}
    cond = {
        "type": kind, "status": status,
        # The transition time moves only when the condition flips.
        "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status else now_rfc3339(),
    }
    if reason and not ok:
        cond["reason"] = reason
    return cond


def isvc_status(
    status: ModelStatus, endpoints: ServingEndpoints, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    previous = previous or {}
    prev_conds = {c.get("type"): c for c in previous.get("conditions") or [] if isinstance(c, Mapping)}
    failure = status.failure
    ready = status.available
    reason = failure.reason.value if failure else ""
    urls = {"url": endpoints.grpc, "grpcUrl": endpoints.grpc}
    if endpoints.http:
        urls["restUrl"] = endpoints.http
    return {
        "modelStatus": {
            "transitionStatus": status.transition.value,
            "states": {"activeModelState": status.active.value, "targetModelState": status.target.value},
            "copies": {"failedCopies": status.failed_copies, "totalCopies": status.total_copies},
            "lastFailureInfo": None if failure is None else {
                k: v for k, v in {
                    "location": failure.location, "reason": failure.reason.value, "message": failure.message,
                    "modelRevisionName": failure.model_id, "time": failure.time,
                }.items() if v
            },
        },
        "url": endpoints.grpc,
        "components": {"predictor": urls},
        "conditions": [
            _condition("PredictorReady", ready, prev_conds, reason),
            _condition("Ready", ready, prev_conds, reason),
        ],
    }
