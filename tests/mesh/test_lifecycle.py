"""Instance lifecycle: graceful hand-off on SIGTERM, copies added under load and dropped
when idle, an instance joining late takes work."""

import asyncio
import signal

from harness.mesh_client import model_info
from harness.process import wait_for
from modelmesh.protos import model_mesh_pb2 as pb

ST = pb.ModelStatusInfo


async def test_sigterm_hands_off_models_in_use(etcd, nodes, client_for):
    a, b = nodes(etcd, "ho-a"), nodes(etcd, "ho-b")
    ca, cb = client_for(a), client_for(b)
    ids = [f"ho-{i}" for i in range(6)]
    for mid in ids:
        await ca.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info()))
        await ca.infer(mid)  # all load locally on a (local preference)
    assert set((await a.runtime.loaded())["loaded"]) == set(ids)
    a.mesh.proc.proc.send_signal(signal.SIGTERM)
    await wait_for(lambda: not a.mesh.proc.alive(), 30, "graceful exit")
    assert a.mesh.proc.proc.returncode == 0
    # b loaded every model before a left, so the first request after is a hit on b.
    assert set((await b.runtime.loaded())["loaded"]) >= set(ids)
    loads_before = (await b.runtime.loaded())["loads"]
    for mid in ids:
        assert (await cb.infer(mid)).parameters["runtime"].string_param == "ho-b"
    assert (await b.runtime.loaded())["loads"] == loads_before
    st = await cb.mesh.getModelStatus(pb.GetStatusRequest(modelId=ids[0]))
    assert [ci.location for ci in st.modelCopyInfos] == ["loc-ho-b"]


async def test_hot_model_gets_a_second_copy_then_loses_it_when_idle(etcd, nodes, client_for):
    env = {"MM_SCALEUP_RPM_THRESHOLD": "120", "MM_JANITOR_FREQ_SECS": "1"}
    a, _ = nodes(etcd, "hot-a", mesh_env=env), nodes(etcd, "hot-b", mesh_env=env)
    ca = client_for(a)
    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="hot", modelInfo=model_info()))

    async def copies():
        st = await ca.mesh.getModelStatus(pb.GetStatusRequest(modelId="hot"))
        return sum(1 for ci in st.modelCopyInfos if ci.copyStatus == ST.LOADED)

    async def hammered_until_two_copies():
        for _ in range(20):  # bounded: about 20 x 20 requests
            await asyncio.gather(*(ca.infer("hot") for _ in range(20)))
            if await copies() == 2:
                return True
        return False

    await wait_for(hammered_until_two_copies, 60, "second copy")
    # Unused now: the extra copy is dropped, one copy stays.
    await wait_for(lambda: copies_is(ca, 1), 60, "extra copy removal")
    assert await copies() == 1


async def copies_is(client, n):
    st = await client.mesh.getModelStatus(pb.GetStatusRequest(modelId="hot"))
    return sum(1 for ci in st.modelCopyInfos if ci.copyStatus == ST.LOADED) == n


async def test_type_constraints_place_models_on_matching_instances(etcd, nodes, client_for):
    tc = '{"mt:sklearn": {"required": ["mt:sklearn"]}, "_default": {"required": ["_no_runtime"]}}'
    a = nodes(etcd, "tc-a", mesh_env={"MM_TYPE_CONSTRAINTS": tc, "MM_LABELS": "mt:xgboost"})
    ca = client_for(a)
    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="sk", modelInfo=model_info("mt:sklearn"),
                                                        loadNow=True))
    # No instance has the label yet: a load failure with the message the controller reads.
    await wait_for(lambda: status_is(ca, "sk", ST.LOADING_FAILED), 20, "unplaceable status")
    st = await ca.mesh.getModelStatus(pb.GetStatusRequest(modelId="sk"))
    assert st.errors == ["There are no running instances that meet the label requirements of type mt:sklearn: "
                         "[mt:sklearn]"]
    # An instance with the label joins: the model loads there, without another request.
    b = nodes(etcd, "tc-b", mesh_env={"MM_TYPE_CONSTRAINTS": tc, "MM_LABELS": "mt:sklearn"})
    await wait_for(lambda: status_is(ca, "sk", ST.LOADED), 30, "load on the new instance")
    assert "sk" in (await b.runtime.loaded())["loaded"]
    assert "sk" not in (await a.runtime.loaded())["loaded"]


async def status_is(client, mid, status):
    return (await client.mesh.getModelStatus(pb.GetStatusRequest(modelId=mid))).status == status
