"""Several mesh instances (real processes) over a real etcd, as one distributed model cache."""

import asyncio
import random


from harness.mesh_client import drive_random_traffic as _drive
from harness.mesh_client import model_info
from harness.mesh_client import register_many as _register_many
from modelmesh.protos import model_mesh_pb2 as pb

MB = 1_000_000


async def test_thousand_models_over_three_instances_with_room_for_a_hundred(private_etcd, nodes, client_for):
    etcd = private_etcd
    # 3 x 34 MB at 1 MB per model: room for about 100 of the 1,000 models at once.
    cluster = [nodes(etcd, f"c{i}", capacity=34 * MB) for i in range(3)]
    clients = [client_for(n) for n in cluster]
    ids = [f"model-{i:04d}" for i in range(1000)]
    await _register_many(clients[0], ids)
    rng = random.Random(7)
    failures = await _drive(clients, ids, count=600, concurrency=16, rng=rng)
    assert failures == []
    total_loaded = 0
    for node in cluster:
        state = await node.runtime.loaded()
        assert state["peak_bytes"] <= 34 * MB, f"{node.name} held {state['peak_bytes']} bytes"
        total_loaded += len(state["loaded"])
    assert 30 < total_loaded <= 102
    # Every registration is still there, and every loaded copy is listed in the registry.
    for mid in rng.sample(ids, 50):
        status = await clients[1].mesh.getModelStatus(pb.GetStatusRequest(modelId=mid))
        assert status.status in (pb.ModelStatusInfo.NOT_LOADED, pb.ModelStatusInfo.LOADED)


async def test_lru_evicts_least_recently_used(etcd, nodes, client_for):
    # Room for 3 models of 1 MB: 3.4 MB less the unload buffer (41 x 8 KiB: 1% .. 10% of it).
    node = nodes(etcd, "lru", capacity=3_400_000)
    c = client_for(node)
    for mid in ("a", "b", "c", "d"):
        await c.mesh.registerModel(pb.RegisterModelRequest(modelId=f"lru-{mid}", modelInfo=model_info()))
    for mid in ("a", "b", "c"):
        await c.infer(f"lru-{mid}")
    await c.infer("lru-a")  # a is now the most recently used; b the least
    await c.infer("lru-d")
    loaded = set((await node.runtime.loaded())["loaded"])
    assert loaded == {"lru-a", "lru-c", "lru-d"}
    st = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="lru-b"))
    assert st.status == pb.ModelStatusInfo.NOT_LOADED
    await c.infer("lru-b")  # reloads transparently, evicting c
    assert set((await node.runtime.loaded())["loaded"]) == {"lru-a", "lru-b", "lru-d"}


async def test_a_load_does_not_wait_for_the_unload_that_made_its_room(etcd, nodes, client_for):
    """The reference's unload buffer: a miss that evicts loads while the evicted copy is still
    unloading, as long as the unloads in flight fit the buffer; the runtime never holds more
    than its capacity, so a load beyond that waits for an unload to finish."""
    capacity = 11 * MB  # buffer 123 x 8 KiB (4 loading threads x 1 MB / 4): 9 models + unloads
    node = nodes(etcd, "ubuf", capacity=capacity)
    c = client_for(node)
    ids = [f"ubuf-{i:02d}" for i in range(12)]
    for mid in ids:  # every unload stays in progress until the runtime is told to finish them
        await c.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info(hold_unload=True)))
    for mid in ids[:9]:
        await c.infer(mid)
    await asyncio.wait_for(c.infer(ids[9]), 30)  # evicts ubuf-00, whose unload is held
    state = await node.runtime.loaded()
    assert state["unloading"] == ["ubuf-00"] and ids[9] in state["loaded"]
    await asyncio.wait_for(c.infer(ids[10]), 30)  # evicts ubuf-01: the runtime is now full
    assert (await node.runtime.loaded())["unloading"] == ["ubuf-00", "ubuf-01"]
    last = asyncio.ensure_future(c.infer(ids[11]))  # evicts ubuf-02, and must wait for room
    try:
        await node.runtime.release_unloads()
        await asyncio.wait_for(last, 30)
    finally:
        last.cancel()
    state = await node.runtime.loaded()
    assert state["peak_bytes"] <= capacity, f"the runtime held {state['peak_bytes']} bytes"
    assert ids[11] in state["loaded"] and not set(ids[:3]) & set(state["loaded"])


async def test_requests_go_to_the_instance_holding_the_model(etcd, nodes, client_for):
    a, b = nodes(etcd, "route-a"), nodes(etcd, "route-b")
    ca, cb = client_for(a), client_for(b)
    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="routed", modelInfo=model_info()))
    first = await ca.infer("routed")
    holder = first.parameters["runtime"].string_param
    for _ in range(5):
        resp = await cb.infer("routed")
        assert resp.parameters["runtime"].string_param == holder  # served by the copy, not a new load
    loaded_a = (await a.runtime.loaded())["loaded"]
    loaded_b = (await b.runtime.loaded())["loaded"]
    assert ("routed" in loaded_a) != ("routed" in loaded_b)
