"""VModel transitions: a vmodel's alias moves from its active model to its target only once
the target has loaded; a target that cannot load anywhere marks the vmodel TRANSITION_FAILED;
an auto-deleted model no vmodel refers to any more is deleted.

Also keeps the model -> vmodels index, derived from the vmodels view."""

from __future__ import annotations

import grpc

from modelmesh.kv import Change
from modelmesh.mesh.cache import now_ms
from modelmesh.mesh.cluster import ClusterView
from modelmesh.mesh.errors import MeshError
from modelmesh.mesh.records import ModelRecord, VModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.vmodels")

# How long a reference announced on a model record (ModelRecord.vrefs) counts while the
# vmodel record it announces is not in our view: far longer than a watch takes to deliver it.
VREF_GRACE_MS = 60_000


class VModelTransitions:
    def __init__(self, models: Table[ModelRecord], vmodels: Table[VModelRecord], cluster: ClusterView) -> None:
        self.models = models
        self.vmodels = vmodels
        self.cluster = cluster
        # model id -> vmodel ids whose active or target it is (kept from the vmodels view)
        self._refs: dict[str, set[str]] = {}
        for vid, vm in vmodels.items().items():
            self._index(vid, None, vm)
        vmodels.on_change(self._vmodels_changed)

    def _index(self, vid: str, old: VModelRecord | None, new: VModelRecord | None) -> None:
        for m in ({old.active_model, old.target_model} if old else set()) - {""}:
            refs = self._refs.get(m)
            if refs is not None:
                refs.discard(vid)
                if not refs:
                    del self._refs[m]
        for m in ({new.active_model, new.target_model} if new else set()) - {""}:
            self._refs.setdefault(m, set()).add(vid)

    def _vmodels_changed(self, changes: list[Change[VModelRecord]]) -> None:
        for c in changes:
            self._index(c.id, c.old, c.new)

    def referring(self, model_id: str) -> set[str]:
        """The vmodels whose active or target model this is."""
        return set(self._refs.get(model_id, ()))

    async def model_loaded(self, model_id: str) -> None:
        await self.complete(model_id)

    async def complete(self, model_id: str) -> None:
        """Switch every vmodel whose target is `model_id` to it, if it is loaded somewhere."""
        if not self.cluster.loaded_somewhere(model_id):
            return
        for vid in self.referring(model_id):
            previous: list[str] = []

            def switch(vm: VModelRecord | None) -> VModelRecord | None:
                if vm is None or vm.target_model != model_id or vm.active_model == model_id:
                    return vm
                previous[:] = [vm.active_model]
                return vm.replace(active_model=model_id, target_model="", failed=False)

            after = await self.vmodels.update(vid, switch)
            if after is not None and previous and previous[0]:
                log.info("vmodel transitioned", vmodel=vid, active=model_id, previous=previous[0])
                await self.release(previous[0], vid)

    async def complete_stuck(self) -> None:
        """Transitions whose target loaded while no instance was there to see it."""
        for vm in list(self.vmodels.items().values()):
            if vm.transitioning:
                await self.complete(vm.target_model)

    async def model_failed_for_good(self, model_id: str) -> None:
        """The model could not be loaded on any instance: vmodels moving to it say so."""
        for vid in self.referring(model_id):
            await self.vmodels.update(vid, lambda vm: vm.replace(failed=True)
                                      if vm is not None and vm.target_model == model_id and not vm.failed else vm)

    # --- references and deletion ------------------------------------------------------------

    async def add_reference(self, model_id: str, vmodel_id: str) -> ModelRecord | None:
        """Note on the model's record that `vmodel_id` is being pointed at it, before the
        vmodel record is written. None when the model does not exist (any more)."""
        return await self.models.update(model_id, lambda r: r and r.referenced_by(vmodel_id, now_ms()))

    def referrers(self, model_id: str, record: ModelRecord) -> set[str]:
        """Vmodels that refer to the model: those our vmodels view shows, and those a
        setVModel announced on the record recently whose vmodel record we have not seen
        yet (it may still be on its way from another instance)."""
        refs = self.referring(model_id)
        now = now_ms()
        for vid, at in record.vrefs.items():
            if vid not in refs and self.vmodels.get(vid) is None and now - at < VREF_GRACE_MS:
                refs.add(vid)
        return refs

    async def unregister(self, model_id: str) -> None:
        """Delete the model unless a vmodel refers to it (FAILED_PRECONDITION). The delete is
        a compare-and-delete at the revision checked, so a setVModel on another instance
        (which writes the record first) cannot point a vmodel at a model being deleted."""
        blocked = await self.models.delete_if(model_id, lambda r: not self.referrers(model_id, r))
        if blocked is not None:
            refs = ", ".join(sorted(self.referrers(model_id, blocked)))
            raise MeshError(f"model {model_id} is referenced by vmodel(s) {refs}", grpc.StatusCode.FAILED_PRECONDITION)

    async def release(self, model_id: str, vmodel_id: str) -> None:
        """`vmodel_id` no longer refers to the model: drop its reference from the record, and
        delete the model if it is auto-deleted and nothing else refers to it."""
        record = await self.models.update(model_id, lambda r: r and (
            r.replace(vrefs={k: v for k, v in r.vrefs.items() if k != vmodel_id}) if vmodel_id in r.vrefs else r))
        if record is not None and record.auto_delete:
            await self.models.delete_if(model_id, lambda r: r.auto_delete and not self.referrers(model_id, r))
