"""The CR status state machine over the mesh's VModelStatusInfo (controller.md)."""

from modelmesh.modelspec import FailureReason, ModelState, RuntimeCatalog, TransitionStatus, status_from_vmodel
from modelmesh.protos import model_mesh_pb2 as mm

M, V = mm.ModelStatusInfo, mm.VModelStatusInfo
CATALOG = RuntimeCatalog(served={"mlserver-1.x": frozenset({"rt:mlserver-1.x", "mt:sklearn", "pv:grpc-v2"})},
                         not_served=frozenset({"single-model-rt"}))


def vmodel(status, active, active_status, target=None, target_status=None, errors=(), copies=()):
    info = V(status=status, activeModelId=active, targetModelId=target or active)
    info.activeModelStatus.CopyFrom(M(status=active_status, errors=list(errors) if target is None else [],
                                      modelCopyInfos=list(copies)))
    if target:
        info.targetModelStatus.CopyFrom(M(status=target_status, errors=list(errors)))
    return info


def states(s):
    return s.active.value, s.target.value, s.transition.value, s.available


def test_create_sequence():
    assert states(status_from_vmodel(None, "m1", "mt:sklearn", CATALOG)) == ("Pending", "", "UpToDate", False)
    loading = status_from_vmodel(vmodel(V.DEFINED, "m1", M.LOADING), "m1", "mt:sklearn", CATALOG)
    assert states(loading)[:3] == ("Loading", "", "UpToDate")
    loaded = status_from_vmodel(vmodel(V.DEFINED, "m1", M.LOADED, copies=[
        M.ModelCopyInfo(location="pod-a", copyStatus=M.LOADED, time=1)]), "m1", "mt:sklearn", CATALOG)
    assert states(loaded) == ("Loaded", "", "UpToDate", True) and loaded.total_copies == 1


def test_update_sequence_and_failed_update():
    mid = status_from_vmodel(vmodel(V.TRANSITIONING, "m1", M.LOADED, "m2", M.LOADING), "m2", "mt:sklearn", CATALOG)
    assert states(mid) == ("Loaded", "Loading", "InProgress", True)
    failed = status_from_vmodel(
        vmodel(V.TRANSITION_FAILED, "m1", M.LOADED, "m2", M.LOADING_FAILED, errors=["no such key"]),
        "m2", "mt:sklearn", CATALOG)
    assert states(failed) == ("Loaded", "FailedToLoad", "BlockedByFailedLoad", True)
    assert failed.failure.reason == FailureReason.MODEL_LOAD_FAILED and failed.failure.message == "no such key"
    assert failed.failure.model_id == "m2"


def test_failed_create_has_location_and_time():
    info = vmodel(V.DEFINED, "m1", M.LOADING_FAILED, errors=["bucket missing"], copies=[
        M.ModelCopyInfo(location="pod-b", copyStatus=M.LOADING_FAILED, time=1_700_000_000_000)])
    s = status_from_vmodel(info, "m1", "mt:sklearn", CATALOG)
    assert states(s) == ("FailedToLoad", "", "UpToDate", False)
    assert (s.failure.location, s.failure.time, s.failed_copies) == ("pod-b", "2023-11-14T22:13:20Z", 1)


def test_no_instances_message_classified():
    msg = ["There are no running instances that meet the label requirements of type mt:sklearn: [mt:sklearn]"]
    waiting = status_from_vmodel(vmodel(V.DEFINED, "m1", M.LOADING_FAILED, errors=msg), "m1", "mt:sklearn", CATALOG)
    assert states(waiting) == ("Loading", "", "UpToDate", False)
    assert waiting.failure.reason == FailureReason.RUNTIME_UNHEALTHY
    assert waiting.failure.message == "Waiting for supporting runtime Pod to become available"


def test_unknown_runtime_and_type_without_mesh():
    s = status_from_vmodel(None, "m1", "rt:nope", CATALOG)
    assert (s.active, s.failure.reason, s.failure.message) == (
        ModelState.FAILED, FailureReason.RUNTIME_NOT_RECOGNIZED, "Specified runtime name not recognized")
    s = status_from_vmodel(None, "m1", "mt:tensorflow", CATALOG)
    assert s.failure.reason == FailureReason.NO_SUPPORTING_RUNTIME
    assert s.failure.message == "No ServingRuntime supports specified model type and/or protocol"
    s = status_from_vmodel(None, "m1", "mt:sklearn|pv:grpc-v1", CATALOG)
    assert s.failure.reason == FailureReason.NO_SUPPORTING_RUNTIME
    # A runtime that exists but is not ours: stays Pending, no failure.
    s = status_from_vmodel(None, "m1", "rt:single-model-rt", CATALOG)
    assert states(s) == ("Pending", "", "UpToDate", False) and s.failure is None


def test_update_to_unsupported_type_blocks_but_stays_available():
    s = status_from_vmodel(vmodel(V.DEFINED, "m1", M.LOADED), "m2", "mt:tensorflow", CATALOG)
    assert states(s) == ("Loaded", "FailedToLoad", "BlockedByFailedLoad", True)
    assert s.failure.reason == FailureReason.NO_SUPPORTING_RUNTIME and TransitionStatus.BLOCKED == s.transition
