"""Keeps the mesh's vmodels in step with the config dir, as the controller does for CRs.

Each declared model is registered with `setVModel` (target = its concrete model id, so a
changed path or type transitions the vmodel), a removed one is deleted, and the status of
each is derived from the mesh's vmodel status by the controller's own state machine.

What was registered, and from which file, is kept in `<state>/registered.json`, so that a
restart with the same state dir serves the same models (the vmodels persist in the store)
and still notices a file of this config dir that was removed while it was down. Models
registered from another config dir are kept: the state dir, not the config dir, owns them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from modelmesh.apps.local.declared import DeclaredModel, InvalidModel
from modelmesh.controller.meshclient import MeshClient, MeshRejected, MeshUnavailable
from modelmesh.modelspec.model_info import model_info_key
from modelmesh.modelspec.status import (
    FailureInfo,
    FailureReason,
    ModelState,
    ModelStatus,
    RuntimeCatalog,
    TransitionStatus,
    now_rfc3339,
    status_from_vmodel,
)
from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_mesh_pb2 as mm

log = get_logger("modelmesh.local.registrar")

NAMESPACE = "local"  # one mesh, one namespace; the client ignores it


@dataclass(frozen=True)
class Registered:
    model_id: str
    owner: str
    label: str
    kind: str
    file: str

    def to_json(self) -> dict[str, str]:
        return {"model_id": self.model_id, "owner": self.owner, "label": self.label, "kind": self.kind,
                "file": self.file}


def _kind(m: DeclaredModel) -> str:
    return "Predictor" if m.spec.owner == "ksp" else "InferenceService"


@dataclass(frozen=True)
class ModelRow:
    """One model as `status` shows it."""

    name: str
    kind: str
    file: str
    status: ModelStatus
    declared: bool = True  # False: kept from the state dir, not in this config dir


class Registrar:
    def __init__(self, mesh: MeshClient, catalog: RuntimeCatalog, manifest: Path, config_dir: Path) -> None:
        self.mesh = mesh
        self.catalog = catalog
        self.manifest = manifest
        self.config_dir = Path(os.path.realpath(config_dir))
        self.registered: dict[str, Registered] = self._load()
        self.desired: dict[str, DeclaredModel] = {}
        self.invalid: dict[str, InvalidModel] = {}
        self.rejected: dict[str, ModelStatus] = {}  # name -> status, for the spec the mesh refused
        self.pending: set[str] = set()  # declared names not yet registered (mesh unreachable)
        self.statuses: dict[str, ModelStatus] = {}
        # After a restart the registered models are in the store but not loaded: the first
        # pass registers them again with loadNow, so they are loaded before they are asked for.
        self._first_pass = True

    # --- manifest ------------------------------------------------------------------------

    def _load(self) -> dict[str, Registered]:
        try:
            doc = json.loads(self.manifest.read_text())
            return {name: Registered(**entry) for name, entry in doc.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as e:
            log.warning("ignoring unreadable registration record", path=str(self.manifest), error=str(e))
            return {}

    def _save(self) -> None:
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: r.to_json() for n, r in sorted(self.registered.items())}, indent=1))
        tmp.replace(self.manifest)

    def _in_config_dir(self, file: str) -> bool:
        return Path(os.path.realpath(os.path.dirname(file))) == self.config_dir

    # --- reconcile -----------------------------------------------------------------------

    @property
    def all_registered(self) -> bool:
        return not self.pending

    async def apply(self, models: dict[str, DeclaredModel], invalid: list[InvalidModel]) -> list[str]:
        """Register / transition / delete to match the declared models; returns one line
        per change for the terminal."""
        self.desired = dict(models)
        self.invalid = {m.name: m for m in invalid}
        self.pending = set()
        changes: list[str] = []
        for name, m in sorted(self.desired.items()):
            current = self.registered.get(name)
            unchanged = current is not None and current.model_id == m.model_id and name not in self.rejected
            if unchanged and not self._first_pass:
                if current.file != m.file:  # moved to another file: the record follows it
                    self.registered[name] = Registered(m.model_id, m.spec.owner, m.label, _kind(m), m.file)
                continue
            if self.catalog.unsatisfiable(m.label) is not None:
                continue  # status says why (no runtime); nothing to register
            try:
                await self.mesh.set_vmodel(NAMESPACE, mm.SetVModelRequest(
                    vModelId=name, owner=m.spec.owner, targetModelId=m.model_id,
                    modelInfo=mm.ModelInfo(type=m.label, path=m.spec.path, key=model_info_key(m.spec)),
                    autoDeleteTargetModel=True, loadNow=True))
            except MeshUnavailable as e:
                log.info("mesh not reachable yet", model=name, error=str(e))
                self.pending.add(name)
                continue
            except MeshRejected as e:
                self.rejected[name] = ModelStatus(
                    active=ModelState.FAILED, transition=TransitionStatus.UP_TO_DATE,
                    failure=FailureInfo(FailureReason.MODEL_LOAD_FAILED, str(e), m.model_id, time=now_rfc3339()))
                changes.append(f"model {name}: rejected by the mesh: {e}")
                continue
            self.rejected.pop(name, None)
            if not unchanged:
                verb = "registered" if current is None else "updated"
                changes.append(f"model {name}: {verb} ({m.spec.model_type}, {_where(m)})")
            self.registered[name] = Registered(m.model_id, m.spec.owner, m.label, _kind(m), m.file)
        for name, entry in sorted(self.registered.items()):
            if name in self.desired or name in self.invalid:
                continue
            if not self._in_config_dir(entry.file) and os.path.exists(entry.file):
                continue  # declared in another config dir that used this state dir
            try:
                await self.mesh.delete_vmodel(NAMESPACE, name, entry.owner)
            except MeshUnavailable as e:
                log.info("mesh not reachable yet", model=name, error=str(e))
                self.pending.add(name)
                continue
            except MeshRejected as e:
                if e.code != grpc.StatusCode.NOT_FOUND:
                    changes.append(f"model {name}: delete refused by the mesh: {e}")
                    continue
            del self.registered[name]
            self.statuses.pop(name, None)
            changes.append(f"model {name}: removed")
        self._save()
        self._first_pass = self._first_pass and bool(self.pending)
        return changes

    async def refresh(self) -> None:
        """Status of every model from the mesh (the controller's state machine)."""
        statuses: dict[str, ModelStatus] = {}
        for name, m in self.desired.items():
            if name in self.rejected:
                statuses[name] = self.rejected[name]
                continue
            statuses[name] = await self._status(name, m.spec.owner, m.model_id, m.label)
        for name, inv in self.invalid.items():
            statuses[name] = self.statuses.get(name) if _same_invalid(self.statuses.get(name), inv) \
                else ModelStatus.invalid_spec(inv.reason, inv.message)
        for name, entry in self.registered.items():
            if name not in statuses:
                statuses[name] = await self._status(name, entry.owner, entry.model_id, entry.label)
        self.statuses = statuses

    async def _status(self, name: str, owner: str, model_id: str, label: str) -> ModelStatus:
        info: mm.VModelStatusInfo | None = None
        try:
            info = await self.mesh.get_vmodel_status(NAMESPACE, name, owner)
        except MeshUnavailable:
            previous = self.statuses.get(name)
            return previous if previous is not None else ModelStatus()
        except MeshRejected as e:
            if e.code != grpc.StatusCode.NOT_FOUND:
                log.warning("vmodel status failed", model=name, error=str(e))
        return status_from_vmodel(info, model_id, label, self.catalog)

    def rows(self) -> list[ModelRow]:
        rows = []
        for name in sorted(self.statuses):
            status = self.statuses[name]
            if name in self.desired:
                m = self.desired[name]
                rows.append(ModelRow(name, _kind(m), m.file, status))
            elif name in self.invalid:
                inv = self.invalid[name]
                rows.append(ModelRow(name, "", inv.file, status))
            elif name in self.registered:
                entry = self.registered[name]
                rows.append(ModelRow(name, entry.kind, entry.file, status, declared=False))
        return rows


def _same_invalid(status: ModelStatus | None, inv: InvalidModel) -> bool:
    """Keep an InvalidSpec status (and its time) while the problem is the same."""
    return status is not None and status.failure is not None and status.failure.message == inv.message \
        and status.transition == TransitionStatus.INVALID_SPEC


def _where(m: DeclaredModel) -> str:
    params = m.spec.storage_params
    if params.get("type") == "pvc" and params.get("name", "").startswith("local-"):
        return "local files"
    kind = params.get("type") or (f"storage key {m.spec.storage_key}" if m.spec.storage_key else "default storage")
    return f"{kind}:{m.spec.path}"


def status_json(row: ModelRow) -> dict[str, Any]:
    s = row.status
    failure = s.failure
    return {
        "name": row.name, "kind": row.kind, "file": row.file, "declared": row.declared,
        "available": s.available, "activeModelState": s.active.value, "targetModelState": s.target.value,
        "transitionStatus": s.transition.value, "totalCopies": s.total_copies, "failedCopies": s.failed_copies,
        "lastFailureInfo": None if failure is None else {
            k: v for k, v in {"reason": failure.reason.value, "message": failure.message,
                              "modelId": failure.model_id, "location": failure.location,
                              "time": failure.time}.items() if v},
    }
