"""Model and vmodel status as the external API reports it, derived from the records."""

from __future__ import annotations

from collections.abc import Mapping

from modelmesh.mesh.records import InstanceRecord, ModelRecord, VModelRecord
from modelmesh.protos import model_mesh_pb2 as pb

MS = pb.ModelStatusInfo
VS = pb.VModelStatusInfo


def model_status(record: ModelRecord | None, instances: Mapping[str, InstanceRecord], now_ms: int,
                 failure_expiry_ms: int) -> pb.ModelStatusInfo:
    if record is None:
        return MS(status=MS.NOT_FOUND)
    copies = []
    loaded = loading = False
    for iid, t in record.instance_ids.items():
        inst = instances.get(iid)
        if inst is not None:
            loaded = True
            copies.append(MS.ModelCopyInfo(location=inst.location or iid, copyStatus=MS.LOADED, time=t))
    for iid, t in record.loading_in.items():
        inst = instances.get(iid)
        if inst is not None and iid not in record.instance_ids:
            loading = True
            copies.append(MS.ModelCopyInfo(location=inst.location or iid, copyStatus=MS.LOADING, time=t))
    failures = record.live_failures(now_ms, failure_expiry_ms)
    errors = []
    for iid, t in sorted(failures.items(), key=lambda kv: -kv[1]):
        inst = instances.get(iid)
        location = inst.location if inst is not None and inst.location else iid
        copies.append(MS.ModelCopyInfo(location=location, copyStatus=MS.LOADING_FAILED, time=t))
        if iid in record.fail_msgs:
            errors.append(record.fail_msgs[iid])
    if loaded:
        status = MS.LOADED
    elif loading:
        status = MS.LOADING
    elif failures:
        status = MS.LOADING_FAILED
    else:
        status = MS.NOT_LOADED
    return MS(status=status, errors=errors if status == MS.LOADING_FAILED else [], modelCopyInfos=copies)


def vmodel_status(vm: VModelRecord | None, active: pb.ModelStatusInfo, target: pb.ModelStatusInfo | None) -> pb.VModelStatusInfo:
    if vm is None:
        return VS(status=VS.NOT_FOUND)
    if vm.transitioning:
        # The flag is written just after the target's failure is recorded; either says it.
        failed = vm.failed or (target is not None and target.status == MS.LOADING_FAILED)
        status = VS.TRANSITION_FAILED if failed else VS.TRANSITIONING
    else:
        status = VS.DEFINED
    # As the reference: with no transition in progress the target is the active model.
    out = VS(status=status, activeModelId=vm.active_model,
             targetModelId=vm.target_model if vm.transitioning else vm.active_model, owner=vm.owner)
    out.activeModelStatus.CopyFrom(active)
    if target is not None and vm.transitioning:
        out.targetModelStatus.CopyFrom(target)
    return out
