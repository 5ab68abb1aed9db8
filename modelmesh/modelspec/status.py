"""The CR status state machine, derived from the mesh's vmodel status (controller.md)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from modelmesh.protos import model_mesh_pb2 as mm

_M = mm.ModelStatusInfo
_V = mm.VModelStatusInfo


class ModelState(str, enum.Enum):
    NONE = ""
    PENDING = "Pending"
    STANDBY = "Standby"
    LOADING = "Loading"
    LOADED = "Loaded"
    FAILED = "FailedToLoad"


class TransitionStatus(str, enum.Enum):
    UP_TO_DATE = "UpToDate"
    IN_PROGRESS = "InProgress"
    BLOCKED = "BlockedByFailedLoad"
    INVALID_SPEC = "InvalidSpec"


class FailureReason(str, enum.Enum):
    MODEL_LOAD_FAILED = "ModelLoadFailed"
    RUNTIME_UNHEALTHY = "RuntimeUnhealthy"
    NO_SUPPORTING_RUNTIME = "NoSupportingRuntime"
    RUNTIME_NOT_RECOGNIZED = "RuntimeNotRecognized"
    INVALID_PREDICTOR_SPEC = "InvalidPredictorSpec"


MESSAGES = {
    FailureReason.RUNTIME_NOT_RECOGNIZED: "Specified runtime name not recognized",
    FailureReason.NO_SUPPORTING_RUNTIME: "No ServingRuntime supports specified model type and/or protocol",
    FailureReason.RUNTIME_UNHEALTHY: "Waiting for supporting runtime Pod to become available",
}

# How the mesh says "no instance has the labels this model needs" (the reference's wording,
# "There are no running instances that meet the label requirements of type ...").
_NO_INSTANCES = re.compile(r"no (running )?instances .*label requirements", re.IGNORECASE)

_MODEL_STATE = {
    _M.NOT_FOUND: ModelState.PENDING,
    _M.NOT_LOADED: ModelState.STANDBY,
    _M.LOADING: ModelState.LOADING,
    _M.LOADED: ModelState.LOADED,
    _M.LOADING_FAILED: ModelState.FAILED,
    _M.UNKNOWN: ModelState.PENDING,
}
_TRANSITION = {
    _V.DEFINED: TransitionStatus.UP_TO_DATE,
    _V.TRANSITIONING: TransitionStatus.IN_PROGRESS,
    _V.TRANSITION_FAILED: TransitionStatus.BLOCKED,
}


@dataclass(frozen=True)
class FailureInfo:
    reason: FailureReason
    message: str
    model_id: str = ""
    location: str = ""
    time: str = ""  # RFC 3339


@dataclass(frozen=True)
class ModelStatus:
    active: ModelState = ModelState.PENDING
    target: ModelState = ModelState.NONE
    transition: TransitionStatus = TransitionStatus.UP_TO_DATE
    failure: FailureInfo | None = None
    total_copies: int = 0
    failed_copies: int = 0
    waiting_for_runtime: bool = False

    @property
    def available(self) -> bool:
        # Pending means "not registered yet": nothing would answer a request for it.
        return self.active in (ModelState.STANDBY, ModelState.LOADING, ModelState.LOADED) \
            and not self.waiting_for_runtime

    @classmethod
    def invalid_spec(cls, reason: str, message: str) -> "ModelStatus":
        return cls(active=ModelState.FAILED, target=ModelState.NONE, transition=TransitionStatus.INVALID_SPEC,
                   failure=FailureInfo(FailureReason(reason), message, time=now_rfc3339()))


@dataclass(frozen=True)
class RuntimeCatalog:
    """The runtimes of a namespace as the controller sees them: served ones with their labels,
    and the names of ones that exist but are not ours (not multiModel, or disabled)."""

    served: Mapping[str, frozenset[str]] = field(default_factory=dict)
    not_served: frozenset[str] = frozenset()

    def unsatisfiable(self, label: str) -> FailureReason | None:
        """Why no served runtime can take a model with this type label, or None if one can."""
        required = [part for part in label.split("|") if part]
        for labels in self.served.values():
            if all(r in labels for r in required):
                return None
        runtime = next((r[3:] for r in required if r.startswith("rt:")), None)
        if runtime is not None and runtime not in self.served:
            return FailureReason.RUNTIME_NOT_RECOGNIZED
        return FailureReason.NO_SUPPORTING_RUNTIME

    def names_unserved_runtime(self, label: str) -> bool:
        return any(p.startswith("rt:") and p[3:] in self.not_served for p in label.split("|"))


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms_to_rfc3339(ms: int) -> str:
    if not ms:
        return now_rfc3339()
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _failure(info: mm.ModelStatusInfo, model_id: str) -> FailureInfo:
    failed = [c for c in info.modelCopyInfos if c.copyStatus == _M.LOADING_FAILED]
    copy = max(failed, key=lambda c: c.time) if failed else None
    return FailureInfo(
        reason=FailureReason.MODEL_LOAD_FAILED,
        message=info.errors[0] if info.errors else "model failed to load",
        model_id=model_id, location=copy.location if copy else "",
        time=_ms_to_rfc3339(copy.time if copy else 0),
    )


def status_from_vmodel(
    info: mm.VModelStatusInfo | None, model_id: str, label: str, catalog: RuntimeCatalog
) -> ModelStatus:
    """Status of the CR whose current spec is concrete model `model_id` with type `label`.

    `info` is the mesh's answer (None when the vmodel is unknown or was not registered).
    """
    missing_runtime = catalog.unsatisfiable(label)
    if info is None or info.status == _V.NOT_FOUND:
        if missing_runtime is not None and not catalog.names_unserved_runtime(label):
            return ModelStatus(
                active=ModelState.FAILED, target=ModelState.NONE, transition=TransitionStatus.UP_TO_DATE,
                failure=FailureInfo(missing_runtime, MESSAGES[missing_runtime], model_id, time=now_rfc3339()),
            )
        return ModelStatus()
    active = _MODEL_STATE.get(info.activeModelStatus.status, ModelState.PENDING)
    has_target = bool(info.targetModelId) and info.targetModelId != info.activeModelId
    target = _MODEL_STATE.get(info.targetModelStatus.status, ModelState.PENDING) if has_target else ModelState.NONE
    transition = _TRANSITION.get(info.status, TransitionStatus.UP_TO_DATE)
    if transition == TransitionStatus.BLOCKED and target == ModelState.LOADING:
        transition = TransitionStatus.IN_PROGRESS
    failure = None
    if target == ModelState.FAILED:
        failure = _failure(info.targetModelStatus, info.targetModelId)
    elif active == ModelState.FAILED:
        failure = _failure(info.activeModelStatus, info.activeModelId)
    waiting = False
    if failure is not None and (_NO_INSTANCES.search(failure.message) or missing_runtime is not None):
        reason = missing_runtime
        if reason is None:
            # A runtime supports the model but has no ready pod: still loading, not failed.
            waiting = True
            reason = FailureReason.RUNTIME_UNHEALTHY
        new_state = ModelState.LOADING if waiting else ModelState.FAILED
        failure = FailureInfo(reason, MESSAGES[reason], failure.model_id, failure.location, failure.time)
        if target == ModelState.FAILED:
            target = new_state
            if waiting:
                transition = TransitionStatus.IN_PROGRESS
        else:
            active = new_state
    elif missing_runtime is not None and model_id not in (info.activeModelId, info.targetModelId):
        # The spec changed to one no runtime can serve; the controller did not register it.
        failure = FailureInfo(missing_runtime, MESSAGES[missing_runtime], model_id, time=now_rfc3339())
        if active in (ModelState.LOADED, ModelState.LOADING, ModelState.STANDBY):
            target, transition = ModelState.FAILED, TransitionStatus.BLOCKED
        else:
            active, target, transition = ModelState.FAILED, ModelState.NONE, TransitionStatus.UP_TO_DATE
    copies = info.activeModelStatus.modelCopyInfos
    return ModelStatus(
        active=active, target=target, transition=transition, failure=failure,
        total_copies=sum(1 for c in copies if c.copyStatus == _M.LOADED),
        failed_copies=sum(1 for c in copies if c.copyStatus == _M.LOADING_FAILED),
        waiting_for_runtime=waiting and active == ModelState.LOADING,
    )
