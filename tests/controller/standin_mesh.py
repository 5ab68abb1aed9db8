"""STAND-IN for the mesh, until the real mesh processes replace it in these tests: an
in-test mmesh.ModelMesh gRPC server that records the controller's vmodel calls and answers
as the test scripts it (a load stays LOADING until the test completes or fails it).

The controller under test talks to it over real gRPC through `modelMeshEndpoint`, exactly
as it would talk to the real mesh; only the mesh's side is scripted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc

from modelmesh.protos import model_mesh_pb2 as mm
from modelmesh.protos import model_mesh_pb2_grpc as mm_grpc

M, V = mm.ModelStatusInfo, mm.VModelStatusInfo
NO_INSTANCES = "There are no running instances that meet the label requirements of type {t}: [{t}]"


@dataclass
class Model:
    model_id: str
    info: mm.ModelInfo
    status: int = M.LOADING
    errors: list[str] = field(default_factory=list)
    copies: list[mm.ModelStatusInfo.ModelCopyInfo] = field(default_factory=list)

    def proto(self) -> mm.ModelStatusInfo:
        return M(status=self.status, errors=self.errors, modelCopyInfos=self.copies)


@dataclass
class VModel:
    owner: str
    active: str
    target: str


class StandInMesh(mm_grpc.ModelMeshServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.models: dict[str, Model] = {}
        self.vmodels: dict[str, VModel] = {}
        self.no_instance_types: set[str] = set()  # model types no running instance accepts
        self.auto_complete = False  # benchmarks: every load succeeds at once

    # --- scripting ----------------------------------------------------------------------------

    def complete(self, model_id: str, location: str = "pod-1") -> None:
        m = self.models[model_id]
        m.status = M.LOADED
        m.copies = [M.ModelCopyInfo(location=location, copyStatus=M.LOADED, time=int(time.time() * 1000))]
        for vm in self.vmodels.values():
            if vm.target == model_id and vm.active != model_id:
                old = vm.active
                vm.active = model_id
                self.models.pop(old, None)  # autoDeleteTargetModel

    def fail(self, model_id: str, message: str, location: str = "pod-1") -> None:
        m = self.models[model_id]
        m.status = M.LOADING_FAILED
        m.errors = [message]
        m.copies = [M.ModelCopyInfo(location=location, copyStatus=M.LOADING_FAILED, time=int(time.time() * 1000))]

    def set_calls(self, vmodel_id: str | None = None) -> list[mm.SetVModelRequest]:
        return [r for m, r in self.calls if m == "setVModel" and (vmodel_id is None or r.vModelId == vmodel_id)]

    def delete_calls(self) -> list[mm.DeleteVModelRequest]:
        return [r for m, r in self.calls if m == "deleteVModel"]

    def target_of(self, vmodel_id: str) -> str:
        return self.vmodels[vmodel_id].target

    # --- the API --------------------------------------------------------------------------------

    def _status(self, vid: str) -> mm.VModelStatusInfo:
        vm = self.vmodels.get(vid)
        if vm is None:
            return V(status=V.NOT_FOUND)
        active, target = self.models.get(vm.active), self.models.get(vm.target)
        if vm.active == vm.target:
            status = V.DEFINED
        elif target is not None and target.status == M.LOADING_FAILED:
            status = V.TRANSITION_FAILED
        else:
            status = V.TRANSITIONING
        return V(status=status, activeModelId=vm.active, targetModelId=vm.target, owner=vm.owner,
                 activeModelStatus=active.proto() if active else M(status=M.NOT_FOUND),
                 targetModelStatus=target.proto() if target else M(status=M.NOT_FOUND))

    async def setVModel(self, request, context):
        self.calls.append(("setVModel", request))
        vm = self.vmodels.get(request.vModelId)
        if vm is not None and vm.owner != request.owner:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "vmodel owned by another owner")
        if request.targetModelId not in self.models:
            m = Model(request.targetModelId, request.modelInfo)
            if request.modelInfo.type in self.no_instance_types:
                m.status, m.errors = M.LOADING_FAILED, [NO_INSTANCES.format(t=request.modelInfo.type)]
            self.models[request.targetModelId] = m
            if self.auto_complete and m.status == M.LOADING:
                m.status = M.LOADED
        if vm is None:
            self.vmodels[request.vModelId] = VModel(request.owner, request.targetModelId, request.targetModelId)
        else:
            vm.target = request.targetModelId
        if self.auto_complete:
            self.complete(request.targetModelId)
        return self._status(request.vModelId)

    async def getVModelStatus(self, request, context):
        self.calls.append(("getVModelStatus", request))
        return self._status(request.vModelId)

    async def deleteVModel(self, request, context):
        self.calls.append(("deleteVModel", request))
        vm = self.vmodels.pop(request.vModelId, None)
        if vm is not None:
            self.models.pop(vm.active, None)
            self.models.pop(vm.target, None)
        return mm.DeleteVModelResponse()
