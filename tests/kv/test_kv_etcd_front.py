"""The etcd front of the embedded store, beyond the KVStore contract (which test_kv_contract
runs through it): what other processes rely on when they share the store through it."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from aetcd import rpc
from kv_helpers import collect, etcd_store

from modelmesh.kv import EventType, LeaseLost
from modelmesh.kv.embedded import EmbeddedStore
from modelmesh.kv.etcd_front import EtcdFront


@pytest.fixture
async def backing(tmp_path):
    store = EmbeddedStore(tmp_path / "state")
    yield store
    await store.close()


@pytest.fixture
async def front(backing):
    f = await EtcdFront(backing).start()
    yield f
    await f.stop()


@pytest.fixture
def prefix() -> str:
    return f"/front/{uuid.uuid4().hex[:8]}/"


async def test_lease_of_a_holder_that_went_away_expires_with_its_keys(front, backing, prefix):
    """A mesh process killed outright stops its keep-alives: its instance record must go."""
    holder, observer = etcd_store(front.endpoint), etcd_store(front.endpoint)
    try:
        lease = await holder.grant_lease(2)
        assert lease.ttl_s >= 2
        await holder.put(prefix + "instance", b"x", lease=lease)
        start = await observer.revision() + 1
        watch = observer.watch_prefix(prefix, start)
        await holder.close()  # no revoke: as if the process died
        events = await collect(watch, 1, 15)
        assert [(e.type, e.key) for e in events] == [(EventType.DELETE, prefix + "instance")]
        assert await observer.get(prefix + "instance") is None
        assert backing.lease(lease.id) is None
        with pytest.raises(LeaseLost):
            await observer.put(prefix + "late", b"x", lease=lease)
        await watch.aclose()
    finally:
        await holder.close()
        await observer.close()


async def test_watch_resumes_across_a_front_restart_without_loss(front, backing, prefix):
    client = etcd_store(front.endpoint)
    try:
        first = await client.put(prefix + "a", b"1")
        watch = client.watch_prefix(prefix, first)
        assert [e.key for e in await collect(watch, 1, 10)] == [prefix + "a"]
        port = front.port
        await front.stop()
        await backing.put(prefix + "b", b"2")  # written while no front serves
        again = await EtcdFront(backing, port=port).start()
        try:
            await backing.put(prefix + "c", b"3")
            events = await collect(watch, 2, 20)
            assert [(e.key, e.value) for e in events] == [(prefix + "b", b"2"), (prefix + "c", b"3")]
        finally:
            await watch.aclose()
            await again.stop()
    finally:
        await client.close()


async def test_a_transaction_writes_at_one_revision_and_bad_requests_are_refused(front, backing, prefix):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{front.port}")
    kv = rpc.KVStub(channel)
    try:
        start = backing.current_revision + 1
        watch = backing.watch_prefix(prefix, start)
        a, b = (prefix + "a").encode(), (prefix + "b").encode()
        resp = await kv.Txn(rpc.TxnRequest(success=[
            rpc.RequestOp(request_put=rpc.PutRequest(key=a, value=b"1")),
            rpc.RequestOp(request_put=rpc.PutRequest(key=b, value=b"2"))]))
        assert resp.succeeded and resp.header.revision == start
        batch = await asyncio.wait_for(anext(watch), 10)
        assert [(e.key, e.mod_revision) for e in batch] == [(prefix + "a", start), (prefix + "b", start)]
        await watch.aclose()

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await kv.Txn(rpc.TxnRequest(success=[
                rpc.RequestOp(request_put=rpc.PutRequest(key=a, value=b"x")),
                rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=a))]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "duplicate key" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await kv.Put(rpc.PutRequest(key=b"\xff\xfe", value=b"x"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await kv.Put(rpc.PutRequest(key=a, value=b"x", lease=12345))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert (await backing.get(prefix + "a")).value == b"1"  # nothing refused was written

        # A value compare, and a range that is not a prefix: [a, b) holds a only.
        resp = await kv.Txn(rpc.TxnRequest(
            compare=[rpc.Compare(key=a, target=rpc.Compare.CompareTarget.VALUE,
                                 result=rpc.Compare.CompareResult.EQUAL, value=b"1")],
            success=[rpc.RequestOp(request_range=rpc.RangeRequest(key=a, range_end=b))]))
        assert resp.succeeded and [k.key for k in resp.responses[0].response_range.kvs] == [a]
    finally:
        await channel.close()


async def test_keys_written_through_the_front_are_durable(tmp_path, prefix):
    store = EmbeddedStore(tmp_path / "state")
    front = await EtcdFront(store).start()
    client = etcd_store(front.endpoint)
    lease = await client.grant_lease(30)
    await client.put(prefix + "durable", b"d")
    await client.put(prefix + "leased", b"l", lease=lease)
    await client.close()
    await front.stop()
    await store.close()

    reopened = EmbeddedStore(tmp_path / "state")
    try:
        kvs, _ = await reopened.get_prefix(prefix)
        assert [(k.key, k.value) for k in kvs] == [(prefix + "durable", b"d")]
    finally:
        await reopened.close()
