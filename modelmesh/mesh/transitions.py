"""VModel transitions: a vmodel's alias moves from its active model to its target only once
the target has loaded; a target that cannot load anywhere marks the vmodel TRANSITION_FAILED;
an auto-deleted model no vmodel refers to any more is deleted.

Also keeps the model -> vmodels index, derived from the vmodels view."""

from __future__ import annotations

from modelmesh.kv import Change
from modelmesh.mesh.cluster import ClusterView
from modelmesh.mesh.records import ModelRecord, VModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.vmodels")


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
                await self.delete_if_orphaned(previous[0])

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

    async def delete_if_orphaned(self, model_id: str) -> None:
        record = self.models.get(model_id)
        if record is not None and record.auto_delete and not self.referring(model_id):
            await self.models.delete(model_id)
