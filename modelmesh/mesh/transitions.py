"""VModel transitions: a vmodel's alias moves from its active model to its target only once
the target has loaded; a target that cannot load marks the vmodel TRANSITION_FAILED."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmesh.kv import Change
from modelmesh.mesh.cache import now_ms
from modelmesh.mesh.placement import choose_instance
from modelmesh.mesh.records import VModelRecord
from modelmesh.mesh.router import MAX_FAILED_INSTANCES
from modelmesh.observability.logging import get_logger

if TYPE_CHECKING:
    from modelmesh.mesh.instance import MeshInstance

log = get_logger("modelmesh.mesh.vmodels")


class VModelTransitions:
    def __init__(self, mesh: "MeshInstance") -> None:
        self.mesh = mesh
        # model id -> vmodel ids whose active or target it is (kept from the vmodels view)
        self._refs: dict[str, set[str]] = {}
        for vid, vm in mesh.vmodels.items().items():
            self._index(vid, None, vm)
        mesh.vmodels.on_change(self._vmodels_changed)

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
        return set(self._refs.get(model_id, ()))

    def _loaded_somewhere(self, model_id: str) -> bool:
        record = self.mesh.models.get(model_id)
        live = self.mesh.instances.items()
        return record is not None and any(i in live for i in record.instance_ids)

    async def model_loaded(self, model_id: str) -> None:
        await self.complete(model_id)

    async def complete(self, model_id: str) -> None:
        """Switch every vmodel whose target is `model_id` to it, if it is loaded somewhere."""
        if not self._loaded_somewhere(model_id):
            return
        for vid in self.referring(model_id):
            previous: list[str] = []

            def switch(vm: VModelRecord | None) -> VModelRecord | None:
                if vm is None or vm.target_model != model_id or vm.active_model == model_id:
                    return vm
                previous[:] = [vm.active_model]
                return vm.replace(active_model=model_id, target_model="", failed=False)

            after = await self.mesh.vmodels.update(vid, switch)
            if after is not None and previous and previous[0]:
                log.info("vmodel transitioned", vmodel=vid, active=model_id, previous=previous[0])
                await self.mesh.delete_if_orphaned(previous[0])

    async def model_failed(self, model_id: str) -> None:
        """After a failed load: retry elsewhere while instances remain, else mark the vmodels."""
        mesh = self.mesh
        record = mesh.models.get(model_id)
        if record is None:
            return
        vids = self.referring(model_id)
        if not vids:
            return
        failures = record.failed_instances(now_ms(), mesh.settings.load_failure_expiry_ms)
        can_retry = len(failures) < MAX_FAILED_INSTANCES and choose_instance(
            record.type, mesh.default_size, mesh.instances.items(), mesh.constraints, mesh.id, exclude=failures
        ) is not None
        if can_retry and not mesh.live_holders(record):
            await mesh.ensure_loaded_somewhere(model_id)
            return
        if mesh.live_holders(record):
            return
        for vid in vids:
            await mesh.vmodels.update(vid, lambda vm: vm.replace(failed=True)
                                      if vm is not None and vm.target_model == model_id and not vm.failed else vm)
