"""Failures: instance death, etcd restart, load failures, a runtime that lost a model."""

import asyncio
import random

import grpc
import pytest

from harness.mesh_client import model_info
from modelmesh.protos import model_mesh_pb2 as pb

from harness.mesh_client import drive_random_traffic as _drive
from harness.mesh_client import register_many as _register_many
from harness.process import wait_for

MB = 1_000_000
ST = pb.ModelStatusInfo


async def test_killed_instance_mid_traffic(private_etcd, nodes, client_for):
    etcd = private_etcd
    cluster = [nodes(etcd, f"k{i}", capacity=20 * MB) for i in range(3)]
    survivors = [client_for(n) for n in cluster[:2]]
    ids = [f"km-{i:03d}" for i in range(60)]
    await _register_many(survivors[0], ids)
    rng = random.Random(3)
    assert await _drive(survivors, ids, count=150, concurrency=8, rng=rng) == []
    done: list = []
    traffic = asyncio.ensure_future(_drive(survivors, ids, count=400, concurrency=8, rng=rng, progress=done))
    await wait_for(lambda: len(done) >= 50, 60, "50 requests done")  # kill it while traffic is in flight
    cluster[2].kill()
    failures = await traffic
    # Requests already inside the dead instance may fail; nothing after that.
    assert len(failures) <= 8, failures
    assert await _drive(survivors, ids, count=150, concurrency=8, rng=rng) == []
    for mid in ids:  # no registration lost
        st = await survivors[0].mesh.getModelStatus(pb.GetStatusRequest(modelId=mid))
        assert st.status != ST.NOT_FOUND


async def test_etcd_restart_mid_traffic(private_etcd, nodes, client_for):
    etcd = private_etcd
    cluster = [nodes(etcd, f"e{i}", capacity=50 * MB) for i in range(2)]
    clients = [client_for(n) for n in cluster]
    ids = [f"em-{i:02d}" for i in range(20)]
    await _register_many(clients[0], ids)
    rng = random.Random(5)
    assert await _drive(clients, ids, count=100, concurrency=8, rng=rng) == []  # all loaded now
    etcd.stop()
    # Loaded models keep serving from memory while etcd is down.
    assert await _drive(clients, ids, count=100, concurrency=8, rng=rng) == []
    etcd.start()
    await clients[1].mesh.registerModel(pb.RegisterModelRequest(modelId="after-restart", modelInfo=model_info()),
                                        timeout=30)
    resp = await clients[0].infer("after-restart")
    assert resp.model_name == "after-restart"
    assert await _drive(clients, ids, count=100, concurrency=8, rng=rng) == []


async def test_load_failure_is_recorded_retried_elsewhere_then_fails_fast(etcd, nodes, client_for):
    cluster = [nodes(etcd, f"f{i}") for i in range(2)]
    c = client_for(cluster[0])
    await c.mesh.registerModel(pb.RegisterModelRequest(
        modelId="broken", modelInfo=model_info(fail="corrupt model file: bad magic")))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.infer("broken")
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "corrupt model file: bad magic" in e.value.details()
    st = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="broken"))
    assert st.status == ST.LOADING_FAILED
    assert st.errors and st.errors[0] == "corrupt model file: bad magic"
    failed_at = {ci.location for ci in st.modelCopyInfos if ci.copyStatus == ST.LOADING_FAILED}
    assert failed_at == {"loc-f0", "loc-f1"}  # tried on both instances
    loads_before = [(await n.runtime.loaded())["loads"] for n in cluster]
    with pytest.raises(grpc.aio.AioRpcError) as e:  # cached failure: no new load attempt
        await c.infer("broken")
    assert "corrupt model file" in e.value.details()
    assert [(await n.runtime.loaded())["loads"] for n in cluster] == loads_before
    # A healthy model on the same instances is unaffected.
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="healthy", modelInfo=model_info()))
    assert (await c.infer("healthy")).model_name == "healthy"


async def test_runtime_that_lost_a_model_gets_it_reloaded(etcd, nodes, client_for):
    node = nodes(etcd, "lost")
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="amnesia", modelInfo=model_info()))
    await c.infer("amnesia")
    # Make the runtime forget its models behind the mesh's back (as a runtime restart would).
    async with grpc.aio.insecure_channel(f"127.0.0.1:{node.runtime.port}") as ch:
        from modelmesh.protos import model_runtime_pb2 as rt
        from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub
        await ModelRuntimeStub(ch).unloadModel(rt.UnloadModelRequest(modelId="amnesia"))
    resp = await c.infer("amnesia")
    assert resp.model_name == "amnesia"
    assert (await node.runtime.loaded())["loads"] == 2


async def test_runtime_down_is_served_elsewhere_or_reported(etcd, nodes, client_for):
    a, b = nodes(etcd, "rd-a"), nodes(etcd, "rd-b")
    ca = client_for(a)
    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="rd", modelInfo=model_info()))
    assert (await ca.infer("rd")).parameters["runtime"].string_param == "rd-a"  # local preference
    a.runtime.proc.kill()  # a's model server dies; its mesh instance lives on
    resp = await ca.infer("rd")  # served by a copy loaded on b
    assert resp.parameters["runtime"].string_param == "rd-b"
    b.runtime.proc.kill()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await ca.infer("rd")
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert e.value.details().startswith("ModelRuntime UNAVAILABLE")


async def test_deadline_propagates_to_the_runtime(etcd, nodes, client_for):
    node = nodes(etcd, "dl")
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="slow", modelInfo=model_info(infer_ms=3000)))
    await c.infer("slow")  # loaded (3 s)
    started = asyncio.get_running_loop().time()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.infer("slow", timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert asyncio.get_running_loop().time() - started < 2.5
    # The runtime got the client's deadline, less the hop: not none, not a longer one (the
    # grpc-timeout header is rounded on each hop, hence the small margin).
    seen = (await node.runtime.loaded())["deadlines"][-1]
    assert seen is not None and 0.2 < seen <= 0.52, seen
    # The mesh stays healthy for the next request.
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="fast", modelInfo=model_info()))
    assert (await c.infer("fast")).model_name == "fast"


async def test_runtime_restart_is_detected_and_its_copies_forgotten(etcd, nodes, client_for):
    import urllib.request

    a, _ = nodes(etcd, "rr-a"), nodes(etcd, "rr-b")
    ca = client_for(a)

    def ready_status() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{a.mesh.probe_port}/ready", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="rr-1", modelInfo=model_info()))
    assert (await ca.infer("rr-1")).parameters["runtime"].string_param == "rr-a"
    a.runtime.stop()
    await wait_for(lambda: ready_status() == 503, 30, "not ready")  # a's runtime is gone: not ready
    # New loads go to b while a's runtime is down.
    st = await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="rr-2", modelInfo=model_info(), loadNow=True,
                                                             sync=True))
    assert [ci.location for ci in st.modelCopyInfos] == ["loc-rr-b"]
    a.runtime.start()  # same port: the runtime restarted, empty
    await wait_for(lambda: ready_status() == 200, 30, "ready")

    async def rr1_not_on_a():
        st = await ca.mesh.getModelStatus(pb.GetStatusRequest(modelId="rr-1"))
        return "loc-rr-a" not in [ci.location for ci in st.modelCopyInfos]

    deadline = asyncio.get_running_loop().time() + 30
    while not await rr1_not_on_a():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert (await ca.infer("rr-1")).model_name == "rr-1"  # reloads transparently


async def test_load_failures_are_retried_on_other_instances_for_api_loads(etcd, nodes, client_for):
    """registerModel(loadNow, sync) and ensureLoaded(sync) retry a failed load elsewhere, on
    up to min(3, instances) instances, like a request does (the reference's rule)."""
    cluster = [nodes(etcd, f"rt{i}") for i in range(4)]
    c = client_for(cluster[0])
    # Fails where it is placed first (rt0: local preference), loads on another instance.
    st = await c.mesh.registerModel(pb.RegisterModelRequest(
        modelId="picky", modelInfo=model_info(fail_on=["rt0"]), loadNow=True, sync=True), timeout=60)
    assert st.status == ST.LOADED, st
    assert {ci.location for ci in st.modelCopyInfos if ci.copyStatus == ST.LOADING_FAILED} == {"loc-rt0"}
    assert len([ci for ci in st.modelCopyInfos if ci.copyStatus == ST.LOADED]) == 1
    # Fails everywhere: tried on exactly 3 of the 4 instances, every failure listed.
    st = await c.mesh.registerModel(pb.RegisterModelRequest(
        modelId="hopeless", modelInfo=model_info(fail_on=[f"rt{i}" for i in range(4)]), loadNow=True, sync=True),
        timeout=60)
    assert st.status == ST.LOADING_FAILED, st
    failed_at = {ci.location for ci in st.modelCopyInfos if ci.copyStatus == ST.LOADING_FAILED}
    assert len(failed_at) == 3, st
    assert sorted(st.errors) == sorted(f"load failed on {loc[4:]}" for loc in failed_at)
    attempts = [(await n.runtime.loaded())["load_attempts"].get("hopeless", 0) for n in cluster]
    assert sorted(attempts) == [0, 1, 1, 1], attempts
    # ensureLoaded(sync) on a registered, unloaded model: the same retry.
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="picky2", modelInfo=model_info(fail_on=["rt0"])))
    st = await c.mesh.ensureLoaded(pb.EnsureLoadedRequest(modelId="picky2", sync=True), timeout=60)
    assert st.status == ST.LOADED, st


async def test_etcd_outage_longer_than_the_lease_serves_loaded_models_from_memory(private_etcd, nodes, client_for):
    """etcd down for longer than the instance leases (so every instance record is gone when it
    comes back) and back: requests for loaded models never fail; what needs the store
    answers UNAVAILABLE, never NOT_FOUND."""
    etcd = private_etcd
    cluster = [nodes(etcd, f"eo{i}", capacity=50 * MB) for i in range(2)]
    clients = [client_for(n) for n in cluster]
    ids = [f"eo-{i:02d}" for i in range(20)]
    await _register_many(clients[0], ids)
    rng = random.Random(8)
    # Every model loaded, and each instance has seen where every copy is.
    assert await _drive(clients, ids, count=200, concurrency=8, rng=rng) == []
    done: list = []
    traffic = asyncio.ensure_future(_drive(clients, ids, count=4000, concurrency=4, rng=rng, progress=done))
    etcd.stop()
    # Longer than the lease TTL (3 s in the harness): both instances lose their lease.
    await wait_for(lambda: all("lease lost" in n.mesh.log_path.read_text() for n in cluster) or traffic.done(), 60,
                   "both leases lost")
    assert not traffic.done(), "traffic ended before the outage was long enough"
    # A model the instance has never seen needs the store: UNAVAILABLE, not NOT_FOUND.
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await clients[0].infer("never-registered", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    etcd.start()
    failures = await traffic
    assert failures == []
    assert await _drive(clients, ids, count=200, concurrency=8, rng=rng) == []


async def test_a_reload_while_etcd_is_down_still_serves(private_etcd, nodes, client_for):
    """The runtime lost a loaded model while etcd is down: the mesh reloads it and serves,
    without the registry write it would make with the store up."""
    etcd = private_etcd
    node = nodes(etcd, "eo-reload")
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="eo-amnesia", modelInfo=model_info()))
    await c.infer("eo-amnesia")
    etcd.stop()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{node.runtime.port}") as ch:
        from modelmesh.protos import model_runtime_pb2 as rt
        from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub
        await ModelRuntimeStub(ch).unloadModel(rt.UnloadModelRequest(modelId="eo-amnesia"))
    resp = await c.infer("eo-amnesia")
    assert resp.model_name == "eo-amnesia"
    assert (await node.runtime.loaded())["loads"] == 2
    etcd.start()
    # Back in the registry once the store is back.
    async def listed() -> bool:
        st = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="eo-amnesia"))
        return st.status == ST.LOADED
    deadline = asyncio.get_running_loop().time() + 30
    while not await listed():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


async def test_no_reload_while_the_runtime_is_unreachable_and_no_failure_recorded(etcd, nodes, client_for, tmp_path):
    """The model server answers but the ModelRuntime (adapter) connection is down, so the
    instance is unhealthy: a request whose model the server lost is not reloaded there (that
    load would fail and bar the instance for the load-failure expiry); it is served by another
    instance, else answered "ModelRuntime UNAVAILABLE", and the model loads once the runtime
    is back."""
    import urllib.request

    from harness.mesh import TestRuntimeProcess

    from modelmesh.protos import model_runtime_pb2 as rt
    from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub

    # The model server behind the mesh's serving port; the node's own runtime is the adapter
    # (the SPI endpoint), which the test stops. The test plays the adapter's part of putting
    # models into the server.
    server = TestRuntimeProcess(tmp_path, "srv-a", 100 * MB).start()
    try:
        a = nodes(etcd, "ur-a", mesh_env={"INTERNAL_SERVING_GRPC_PORT": str(server.port)})
        ca = client_for(a)

        async def server_call(method: str, model_id: str) -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                stub = ModelRuntimeStub(ch)
                if method == "load":
                    await stub.loadModel(rt.LoadModelRequest(modelId=model_id, modelKey="{}"), timeout=10)
                else:
                    await stub.unloadModel(rt.UnloadModelRequest(modelId=model_id), timeout=10)

        def ready_status() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{a.mesh.probe_port}/ready", timeout=2) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        async def no_failure_recorded() -> pb.ModelStatusInfo:
            st = await ca.mesh.getModelStatus(pb.GetStatusRequest(modelId="ur"))
            assert st.status != ST.LOADING_FAILED and not st.errors, st
            assert all(ci.copyStatus != ST.LOADING_FAILED for ci in st.modelCopyInfos), st
            return st

        st = await ca.mesh.registerModel(pb.RegisterModelRequest(modelId="ur", modelInfo=model_info(), loadNow=True,
                                                                 sync=True))
        assert st.status == ST.LOADED
        await server_call("load", "ur")
        assert (await ca.infer("ur")).parameters["runtime"].string_param == "srv-a"

        # Adapter down, and the server lost the model: no instance can serve it now.
        a.runtime.stop()
        await wait_for(lambda: ready_status() == 503, 30, "not ready")
        await server_call("unload", "ur")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await ca.infer("ur")
        assert e.value.code() == grpc.StatusCode.INTERNAL
        assert e.value.details().startswith("ModelRuntime UNAVAILABLE"), e.value.details()
        assert (await no_failure_recorded()).status == ST.NOT_LOADED

        # The adapter is back: the model loads on this instance as usual.
        a.runtime.start()
        await wait_for(lambda: ready_status() == 200, 30, "ready")
        st = await ca.mesh.ensureLoaded(pb.EnsureLoadedRequest(modelId="ur", sync=True))
        assert st.status == ST.LOADED, st
        assert [ci.location for ci in st.modelCopyInfos] == ["loc-ur-a"]
        await server_call("load", "ur")
        assert (await ca.infer("ur")).parameters["runtime"].string_param == "srv-a"

        # With another instance in the mesh, the request is served there instead.
        b = nodes(etcd, "ur-b")
        cb = client_for(b)
        # A sees b live once it lists b's copy of a model b loaded.
        await cb.mesh.registerModel(pb.RegisterModelRequest(modelId="ur-on-b", modelInfo=model_info(),
                                                            loadNow=True, sync=True))

        async def a_sees_b() -> list[str]:
            st = await ca.mesh.getModelStatus(pb.GetStatusRequest(modelId="ur-on-b"))
            return [ci.location for ci in st.modelCopyInfos]

        await wait_for(lambda: _equals(a_sees_b(), ["loc-ur-b"]), 30, "a sees b")
        a.runtime.stop()
        await wait_for(lambda: ready_status() == 503, 30, "not ready")
        await server_call("unload", "ur")
        assert (await ca.infer("ur")).parameters["runtime"].string_param == "ur-b"
        await no_failure_recorded()
    finally:
        server.stop()



async def test_a_load_that_finds_the_runtime_unreachable_is_not_a_model_failure(etcd, nodes, client_for):
    """The adapter answers the load UNAVAILABLE (it cannot reach its model server): no load
    failure is recorded against the model (which would bar the instance for the load-failure
    expiry), so a request once the runtime is reachable loads and serves it."""
    node = nodes(etcd, "ul")
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="ul", modelInfo=model_info(unavailable_loads=1),
                                                       loadNow=True))
    await wait_for(lambda: _equals(_load_attempts(node, "ul"), 1), 30, "one load attempt")
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        st = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId="ul"))
        assert st.status != ST.LOADING_FAILED and not st.errors, st
        try:
            resp = await c.infer("ul")
            break
        except grpc.aio.AioRpcError as e:  # until the instance takes loads again (its next health check)
            assert e.code() == grpc.StatusCode.INTERNAL and e.details().startswith("ModelRuntime UNAVAILABLE"), e
        assert asyncio.get_running_loop().time() < deadline, "not served in time"
        await asyncio.sleep(0.1)
    assert resp.model_name == "ul"
    assert await _load_attempts(node, "ul") == 2


async def _load_attempts(node, model_id: str) -> int:
    return (await node.runtime.loaded())["load_attempts"].get(model_id, 0)


async def _equals(probe, expected) -> bool:
    return await probe == expected
