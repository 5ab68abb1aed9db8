"""Virtual models: creation, transitions (success and failure), owners, deletion."""

import grpc
import pytest

from harness.mesh_client import model_info
from modelmesh.protos import model_mesh_pb2 as pb

ST = pb.ModelStatusInfo
VS = pb.VModelStatusInfo


def set_vmodel(vid, target, owner="ksp", **kw):
    info = kw.pop("info", None) or model_info(**kw.pop("spec", {}))
    return pb.SetVModelRequest(vModelId=vid, targetModelId=target, owner=owner, modelInfo=info,
                               autoDeleteTargetModel=True, loadNow=True, **kw)


async def test_create_then_transition_then_delete(etcd, nodes, client_for):
    node = nodes(etcd, "vm-a")
    c = client_for(node)
    st = await c.mesh.setVModel(set_vmodel("vm1", "vm1__ksp-aaaa", sync=True))
    assert st.status == VS.DEFINED and st.activeModelId == "vm1__ksp-aaaa"
    assert st.activeModelStatus.status == ST.LOADED
    assert (await c.infer("vm1", vmodel=True)).model_name == "vm1__ksp-aaaa"

    # Transition to a slow-loading target: the alias keeps serving the old model meanwhile.
    st = await c.mesh.setVModel(set_vmodel("vm1", "vm1__ksp-bbbb", spec={"load_ms": 1500}))
    assert st.status == VS.TRANSITIONING and st.targetModelId == "vm1__ksp-bbbb"
    assert st.activeModelId == "vm1__ksp-aaaa"
    assert (await c.infer("vm1", vmodel=True)).model_name == "vm1__ksp-aaaa"
    st = await c.mesh.setVModel(set_vmodel("vm1", "vm1__ksp-bbbb", spec={"load_ms": 1500}, sync=True))
    assert st.status == VS.DEFINED and st.activeModelId == "vm1__ksp-bbbb"
    assert (await c.infer("vm1", vmodel=True)).model_name == "vm1__ksp-bbbb"
    # The replaced model was auto-delete: it is gone, and unloaded from the runtime.
    old = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="vm1__ksp-aaaa"))
    assert old.status == ST.NOT_FOUND

    await c.mesh.deleteVModel(pb.DeleteVModelRequest(vModelId="vm1", owner="ksp"))
    assert (await c.mesh.getVModelStatus(pb.GetVModelStatusRequest(vModelId="vm1", owner="ksp"))).status == VS.NOT_FOUND
    assert (await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="vm1__ksp-bbbb"))).status == ST.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.infer("vm1", vmodel=True)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


async def test_failed_transition_keeps_serving_the_active_model(etcd, nodes, client_for):
    node = nodes(etcd, "vm-b")
    c = client_for(node)
    await c.mesh.setVModel(set_vmodel("vm2", "vm2__ksp-good", sync=True))
    st = await c.mesh.setVModel(set_vmodel("vm2", "vm2__ksp-bad", spec={"fail": "no such file: s3://b/x"},
                                           sync=True))
    assert st.status == VS.TRANSITION_FAILED
    assert st.activeModelId == "vm2__ksp-good" and st.targetModelId == "vm2__ksp-bad"
    assert st.activeModelStatus.status == ST.LOADED
    assert st.targetModelStatus.status == ST.LOADING_FAILED
    assert st.targetModelStatus.errors[0] == "no such file: s3://b/x"
    assert (await c.infer("vm2", vmodel=True)).model_name == "vm2__ksp-good"
    # A fixed spec (new target) recovers.
    st = await c.mesh.setVModel(set_vmodel("vm2", "vm2__ksp-fixed", sync=True))
    assert st.status == VS.DEFINED and st.activeModelId == "vm2__ksp-fixed"
    assert (await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="vm2__ksp-bad"))).status == ST.NOT_FOUND


async def test_failed_create(etcd, nodes, client_for):
    c = client_for(nodes(etcd, "vm-c"))
    st = await c.mesh.setVModel(set_vmodel("vm3", "vm3__ksp-x", spec={"fail": "bucket does not exist"}, sync=True))
    assert st.status == VS.DEFINED
    assert st.activeModelStatus.status == ST.LOADING_FAILED
    assert st.activeModelStatus.errors == ["bucket does not exist"]


async def test_api_errors(etcd, nodes, client_for):
    c = client_for(nodes(etcd, "vm-d"))

    async def code_of(coro):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await coro
        return e.value.code()

    C = grpc.StatusCode
    assert await code_of(c.mesh.registerModel(pb.RegisterModelRequest(modelId="", modelInfo=model_info()))) == C.INVALID_ARGUMENT
    assert await code_of(c.mesh.registerModel(pb.RegisterModelRequest(modelId="t", modelInfo=pb.ModelInfo()))) == C.INVALID_ARGUMENT
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="dup", modelInfo=model_info()))
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="dup", modelInfo=model_info()))  # same info: OK
    assert await code_of(c.mesh.registerModel(pb.RegisterModelRequest(
        modelId="dup", modelInfo=model_info(size=5)))) == C.ALREADY_EXISTS
    assert await code_of(c.mesh.setVModel(set_vmodel("nov", "nov-m", updateOnly=True))) == C.NOT_FOUND
    await c.mesh.setVModel(set_vmodel("own", "own-m"))
    assert await code_of(c.mesh.setVModel(set_vmodel("own", "own-m2", owner="isvc"))) == C.ALREADY_EXISTS
    assert await code_of(c.mesh.setVModel(set_vmodel("own", "own-m3", expectedTargetModelId="other"))) \
        == C.FAILED_PRECONDITION
    assert await code_of(c.mesh.setVModel(set_vmodel("own", "dup", info=model_info(size=7)))) == C.ALREADY_EXISTS
    assert await code_of(c.mesh.unregisterModel(pb.UnregisterModelRequest(modelId="own-m"))) == C.FAILED_PRECONDITION
    await c.mesh.unregisterModel(pb.UnregisterModelRequest(modelId="never-registered"))  # unknown id: OK
    await c.mesh.unregisterModel(pb.UnregisterModelRequest(modelId="dup"))
    assert (await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="dup"))).status == ST.NOT_FOUND


async def test_unregister_cannot_race_set_vmodel_on_another_instance(etcd, nodes, client_for):
    """unregisterModel on one instance and setVModel pointing at the same model on another,
    at the same time: never both succeed (a vmodel left pointing at a deleted model)."""
    import asyncio

    a, b = nodes(etcd, "race-a"), nodes(etcd, "race-b")
    ca, cb = client_for(a), client_for(b)
    ids = [f"race-{i:02d}" for i in range(40)]
    for mid in ids:
        await ca.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info()))
    for mid in ids:  # b has seen every model
        deadline = asyncio.get_running_loop().time() + 10
        while (await cb.mesh.getModelStatus(pb.GetStatusRequest(modelId=mid))).status == ST.NOT_FOUND:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)

    async def outcome(call):
        try:
            await call
            return "OK"
        except grpc.aio.AioRpcError as e:
            return e.code().name

    async def race(mid):
        return await asyncio.gather(
            outcome(ca.mesh.unregisterModel(pb.UnregisterModelRequest(modelId=mid))),
            outcome(cb.mesh.setVModel(pb.SetVModelRequest(vModelId="v-" + mid, targetModelId=mid, owner="o"))))

    results = dict(zip(ids, await asyncio.gather(*(race(mid) for mid in ids))))
    for mid, (unregistered, vmodel_set) in results.items():
        assert (unregistered, vmodel_set) in (("OK", "NOT_FOUND"), ("FAILED_PRECONDITION", "OK")), (mid, results)
        vst = await ca.mesh.getVModelStatus(pb.GetVModelStatusRequest(vModelId="v-" + mid, owner="o"))
        mst = await ca.mesh.getModelStatus(pb.GetStatusRequest(modelId=mid))
        if vst.status != VS.NOT_FOUND:  # a vmodel never points at a deleted model
            assert mst.status != ST.NOT_FOUND, (mid, results[mid])
