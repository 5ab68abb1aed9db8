"""The janitor's upkeep: it starts loads and never waits for one (so the instance record
keeps being published), and it closes channels to peers that left."""

import asyncio

import orjson

from harness.mesh_client import model_info
from harness.process import wait_for
from modelmesh.kv import open_store
from modelmesh.protos import model_mesh_pb2 as pb


async def test_janitor_keeps_publishing_while_a_copy_it_added_loads(private_etcd, nodes, client_for):
    etcd = private_etcd
    # Only b reacts to the request rate (a, which holds the copy, would ask b to load).
    a = nodes(etcd, "jl-a", mesh_env={"MM_SCALEUP_RPM_THRESHOLD": "100000000", "MM_JANITOR_FREQ_SECS": "1"})
    b = nodes(etcd, "jl-b", mesh_env={"MM_SCALEUP_RPM_THRESHOLD": "30", "MM_JANITOR_FREQ_SECS": "1"})
    ca, cb = client_for(a), client_for(b)
    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="slow-load", modelInfo=model_info(load_ms=5000)))
    await ca.infer("slow-load")  # the first copy, on a (local preference)
    store = await open_store(f"etcd:{etcd.endpoint}", None)
    seen_loading: list[bool] = []

    async def traffic_through_b() -> None:
        # Forwarded to a's copy; b sees a hot model and adds a copy, on itself (5 s load).
        while not seen_loading:
            await asyncio.gather(*(cb.infer("slow-load") for _ in range(5)))

    async def b_published_its_load() -> bool:
        # b's record must show the load in progress while it runs: a janitor awaiting the
        # load would publish nothing until it is over.
        kv = await store.get("mm/test-mesh/instances/jl-b")
        if kv is not None and orjson.loads(kv.value).get("lInProg", 0) >= 1:
            seen_loading.append(True)
        return bool(seen_loading)

    traffic = asyncio.ensure_future(traffic_through_b())
    try:
        await wait_for(b_published_its_load, 40, "b's record showing its load in progress")
        await traffic
    finally:
        traffic.cancel()
        await store.close()
    await wait_for(lambda: _has(b, "slow-load"), 30, "the copy on b")


async def _has(node, model_id) -> bool:
    return model_id in (await node.runtime.loaded())["loaded"]


async def test_channel_to_a_departed_peer_is_closed(etcd, nodes, client_for):
    a, b = nodes(etcd, "dp-a"), nodes(etcd, "dp-b")
    ca, cb = client_for(a), client_for(b)
    await cb.mesh.registerModel(pb.RegisterModelRequest(modelId="dp-m", modelInfo=model_info()))
    await cb.infer("dp-m")  # loaded on b
    assert (await ca.infer("dp-m")).parameters["runtime"].string_param == "dp-b"  # a has a channel to b
    b.stop()
    await wait_for(lambda: "closing the channel to a departed peer" in a.mesh.log_path.read_text(), 30,
                   "a closing its channel to b")
    assert (await ca.infer("dp-m")).parameters["runtime"].string_param == "dp-a"
