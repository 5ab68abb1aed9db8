"""The external management API (`mmesh.ModelMesh`): concrete models and vmodels.

Semantics follow mesh.md ("API semantics users depend on"). Writes are compare-and-swaps
on the records; reads come from the watched in-memory views.
"""

from __future__ import annotations

import time

import grpc

from modelmesh.kv import StoreError, StoreUnavailable
from modelmesh.mesh.cache import now_ms
from modelmesh.mesh.cluster import ClusterView
from modelmesh.mesh.coordinator import LoadCoordinator
from modelmesh.mesh.errors import MeshError
from modelmesh.mesh.metrics import MeshMetrics
from modelmesh.mesh.records import ModelRecord, VModelRecord
from modelmesh.mesh.status import model_status, vmodel_status
from modelmesh.mesh.tables import Table
from modelmesh.mesh.transitions import VModelTransitions
from modelmesh.protos import model_mesh_pb2 as pb
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshServicer

HOUR_MS = 3600 * 1000


def _require_model_id(model_id: str) -> None:
    if not model_id:
        raise MeshError("must provide non-empty modelId", grpc.StatusCode.INVALID_ARGUMENT)


def _owner_mismatch(vm: VModelRecord | None, owner: str) -> bool:
    """An empty owner in a request means "no owner check" (the reference's semantics)."""
    return vm is not None and bool(owner) and vm.owner != owner


class ModelMeshApi(ModelMeshServicer):
    def __init__(self, models: Table[ModelRecord], vmodels: Table[VModelRecord], cluster: ClusterView,
                 coordinator: LoadCoordinator, transitions: VModelTransitions, metrics: MeshMetrics, *,
                 default_vmodel_owner: str, load_wait_timeout_s: float) -> None:
        self.models = models
        self.vmodels = vmodels
        self.cluster = cluster
        self.coordinator = coordinator
        self.transitions = transitions
        self.metrics = metrics
        self.default_vmodel_owner = default_vmodel_owner
        self.load_wait_timeout_s = load_wait_timeout_s

    # --- helpers ------------------------------------------------------------------------

    async def _run(self, name: str, context: grpc.aio.ServicerContext, coro):
        started = time.perf_counter()
        code = "OK"
        try:
            return await coro
        except MeshError as e:
            code = e.code.name
            await context.abort(e.code, e.message)
        except (StoreUnavailable, StoreError) as e:
            code = "UNAVAILABLE"
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"coordination store unavailable: {e}")
        finally:
            self.metrics.requests.api(name, code)[0].observe((time.perf_counter() - started) * 1000)

    def status_of(self, model_id: str) -> pb.ModelStatusInfo:
        return self.cluster.status(model_id)

    def vstatus_of(self, vmodel_id: str) -> pb.VModelStatusInfo:
        vm = self.vmodels.get(vmodel_id)
        if vm is None:
            return vmodel_status(None, pb.ModelStatusInfo(), None)
        target = self.status_of(vm.target_model) if vm.transitioning else None
        return vmodel_status(vm, self.status_of(vm.active_model), target)

    def _check_type(self, model_type: str) -> None:
        if not model_type:
            raise MeshError("modelInfo.type is required", grpc.StatusCode.INVALID_ARGUMENT)
        if self.cluster.constraints.for_type(model_type) is None:
            raise MeshError(f"no instance accepts models of type {model_type}", grpc.StatusCode.INVALID_ARGUMENT)

    async def _register(self, model_id: str, info: pb.ModelInfo, last_used: int, auto_delete: bool) -> ModelRecord:
        """Create the record, or accept an identical existing one; ALREADY_EXISTS otherwise."""
        self._check_type(info.type)
        new = ModelRecord(type=info.type, path=info.path, key=info.key, auto_delete=auto_delete,
                          last_used=last_used, registered=now_ms())
        while True:
            existing = self.models.get(model_id)
            if existing is not None:
                if not existing.same_info(info.type, info.path, info.key):
                    raise MeshError(f"model {model_id} already exists with different type, path or key",
                                    grpc.StatusCode.ALREADY_EXISTS)
                return existing
            if await self.models.create(model_id, new):
                return new
            await self.models.refresh(model_id)

    async def _wait_loaded(self, model_id: str) -> None:
        def settled(rec: ModelRecord | None) -> bool:
            # A failure settles only once no other instance is left to try: until then a
            # retry elsewhere is on its way (LoadCoordinator.after_failure).
            s = model_status(rec, self.cluster.live(), now_ms(), self.cluster.failure_expiry_ms)
            if s.status == pb.ModelStatusInfo.LOADING_FAILED:
                return rec is not None and self.cluster.failed_for_good(rec)
            return s.status in (pb.ModelStatusInfo.LOADED, pb.ModelStatusInfo.NOT_FOUND)

        await self.models.wait_for(model_id, settled, self.load_wait_timeout_s)

    # --- concrete models ------------------------------------------------------------------

    async def registerModel(self, request: pb.RegisterModelRequest, context) -> pb.ModelStatusInfo:
        return await self._run("registerModel", context, self._register_model(request))

    async def _register_model(self, r: pb.RegisterModelRequest) -> pb.ModelStatusInfo:
        _require_model_id(r.modelId)
        # Fresh registrations look old so they never evict models that are in use.
        last_used = r.lastUsedTime or (now_ms() - (HOUR_MS if r.loadNow else 6 * HOUR_MS))
        await self._register(r.modelId, r.modelInfo, last_used, auto_delete=False)
        if r.loadNow or r.sync:
            await self.coordinator.ensure_loaded_somewhere(r.modelId)
            if r.sync:
                await self._wait_loaded(r.modelId)
        return self.status_of(r.modelId)

    async def unregisterModel(self, request: pb.UnregisterModelRequest, context) -> pb.UnregisterModelResponse:
        return await self._run("unregisterModel", context, self._unregister(request.modelId))

    async def _unregister(self, model_id: str) -> pb.UnregisterModelResponse:
        _require_model_id(model_id)
        await self.transitions.unregister(model_id)
        return pb.UnregisterModelResponse()

    async def getModelStatus(self, request: pb.GetStatusRequest, context) -> pb.ModelStatusInfo:
        async def get():
            _require_model_id(request.modelId)
            return self.status_of(request.modelId)
        return await self._run("getModelStatus", context, get())

    async def ensureLoaded(self, request: pb.EnsureLoadedRequest, context) -> pb.ModelStatusInfo:
        return await self._run("ensureLoaded", context, self._ensure_loaded(request))

    async def _ensure_loaded(self, r: pb.EnsureLoadedRequest) -> pb.ModelStatusInfo:
        _require_model_id(r.modelId)
        if self.models.get(r.modelId) is None:
            return pb.ModelStatusInfo(status=pb.ModelStatusInfo.NOT_FOUND)
        await self.coordinator.ensure_loaded_somewhere(r.modelId)
        if r.sync:
            await self._wait_loaded(r.modelId)
        return self.status_of(r.modelId)

    # --- vmodels -------------------------------------------------------------------------

    async def setVModel(self, request: pb.SetVModelRequest, context) -> pb.VModelStatusInfo:
        return await self._run("setVModel", context, self._set_vmodel(request))

    async def _set_vmodel(self, r: pb.SetVModelRequest) -> pb.VModelStatusInfo:
        if not r.vModelId or not r.targetModelId:
            raise MeshError("vModelId and targetModelId are required", grpc.StatusCode.INVALID_ARGUMENT)
        vm = self.vmodels.get(r.vModelId)
        if vm is None and r.updateOnly:
            raise MeshError(f"vmodel {r.vModelId} not found", grpc.StatusCode.NOT_FOUND)
        if _owner_mismatch(vm, r.owner):
            raise _other_owner(r.vModelId, vm)
        if r.expectedTargetModelId:
            current = (vm.target_model or vm.active_model) if vm else ""
            if current != r.expectedTargetModelId:
                raise MeshError(f"vmodel {r.vModelId} target is {current!r}, not {r.expectedTargetModelId!r}",
                                grpc.StatusCode.FAILED_PRECONDITION)
        target = r.targetModelId
        for _ in range(3):  # the target may be unregistered between our steps; bounded
            existing = self.models.get(target)
            if existing is None:
                if not r.modelInfo.type:
                    raise MeshError(f"target model {target} does not exist and no modelInfo was given",
                                    grpc.StatusCode.NOT_FOUND)
                await self._register(target, r.modelInfo, now_ms() - HOUR_MS, auto_delete=r.autoDeleteTargetModel)
            elif r.modelInfo.type and not existing.same_info(r.modelInfo.type, r.modelInfo.path, r.modelInfo.key):
                raise MeshError(f"model {target} already exists with different type, path or key",
                                grpc.StatusCode.ALREADY_EXISTS)
            # On the model's record before the vmodel's: an unregister now sees the reference.
            if await self.transitions.add_reference(target, r.vModelId) is not None:
                break
            await self.models.wait_for(target, lambda rec: rec is None, timeout_s=5)
        else:
            raise MeshError(f"target model {target} was unregistered meanwhile", grpc.StatusCode.NOT_FOUND)

        def change(cur: VModelRecord | None) -> VModelRecord | None:
            if cur is None:
                return VModelRecord(owner=r.owner or self.default_vmodel_owner, active_model=target)
            if _owner_mismatch(cur, r.owner):
                raise _other_owner(r.vModelId, cur)
            if target == cur.active_model:
                return cur.replace(target_model="", failed=False)
            if r.force:
                return cur.replace(active_model=target, target_model="", failed=False)
            return cur.replace(target_model=target, failed=False)

        before = self.vmodels.get(r.vModelId)
        after = await self.vmodels.update(r.vModelId, change)
        if before is not None and after is not None and before.active_model != after.active_model:
            await self.transitions.release(before.active_model, r.vModelId)  # forced switch
        if before is not None and before.target_model and before.target_model not in (
                after.target_model, after.active_model):
            await self.transitions.release(before.target_model, r.vModelId)  # abandoned target
        await self.coordinator.ensure_loaded_somewhere(target)
        await self.transitions.complete(target)
        if r.sync:
            await self._wait_loaded(target)
            await self.transitions.complete(target)
            await self.vmodels.wait_for(r.vModelId, lambda vm: vm is None or not vm.transitioning or vm.failed,
                                     timeout_s=5)
        return self.vstatus_of(r.vModelId)

    async def deleteVModel(self, request: pb.DeleteVModelRequest, context) -> pb.DeleteVModelResponse:
        return await self._run("deleteVModel", context, self._delete_vmodel(request))

    async def _delete_vmodel(self, r: pb.DeleteVModelRequest) -> pb.DeleteVModelResponse:
        vm = self.vmodels.get(r.vModelId)
        if vm is None:
            return pb.DeleteVModelResponse()
        if _owner_mismatch(vm, r.owner):
            return pb.DeleteVModelResponse()  # another owner's vmodel: a silent no-op, as the reference
        await self.vmodels.delete(r.vModelId)
        for model_id in {vm.active_model, vm.target_model} - {""}:
            await self.transitions.release(model_id, r.vModelId)
        return pb.DeleteVModelResponse()

    async def getVModelStatus(self, request: pb.GetVModelStatusRequest, context) -> pb.VModelStatusInfo:
        async def get():
            vm = self.vmodels.get(request.vModelId)
            if _owner_mismatch(vm, request.owner):
                return pb.VModelStatusInfo(status=pb.VModelStatusInfo.NOT_FOUND)
            return self.vstatus_of(request.vModelId)
        return await self._run("getVModelStatus", context, get())


def _other_owner(vmodel_id: str, vm: VModelRecord) -> MeshError:
    return MeshError(f'vmodel {vmodel_id} already exists with different owner "{vm.owner}"',
                     grpc.StatusCode.ALREADY_EXISTS)
