"""etcd-only behaviour: outages, restarts, partitions, TLS, auth, several endpoints.
Each test that breaks etcd starts its own instance."""

from __future__ import annotations

import asyncio
import json

import pytest
from kv_helpers import collect, etcd_store, eventually
from harness.etcd_secure import TlsEtcdServer, enable_auth
from harness.process import free_port
from harness.services import EtcdServer
from harness.tcp_proxy import TcpProxy

from modelmesh.kv import LeaseLost, StoreError, StoreUnavailable, WatchedPrefix, open_store


@pytest.fixture
def own_etcd(tmp_path):
    server = EtcdServer(tmp_path / "etcd").start()
    try:
        yield server
    finally:
        server.stop()


async def test_lease_lost_when_etcd_is_down_longer_than_the_ttl(own_etcd):
    store = etcd_store(own_etcd.endpoint, op_timeout_s=2)
    try:
        lost = asyncio.Event()
        lease = await store.grant_lease(2, on_lost=lost.set)
        await store.put("/outage/instance", b"me", lease=lease)
        await store.put("/outage/durable", b"stays")

        await asyncio.to_thread(own_etcd.stop)
        await asyncio.wait_for(lost.wait(), lease.ttl_s + 5)  # noticed while etcd is still down
        assert lease.lost
        with pytest.raises(LeaseLost):
            await store.put("/outage/instance", b"again", lease=lease)

        # A restarted etcd would extend the lease; the store revokes it, so the keys go.
        await asyncio.to_thread(own_etcd.start)
        await eventually(lambda: _absent(store, "/outage/instance"), 15, "the lost lease's key to be removed")
        assert (await store.get("/outage/durable")).value == b"stays"
        fresh = await store.grant_lease(5)
        await store.put("/outage/instance", b"re-registered", lease=fresh)
        assert (await store.get("/outage/instance")).lease == fresh.id
    finally:
        await store.close()


async def _absent(store, key: str) -> bool:
    try:
        return await store.get(key) is None
    except StoreUnavailable:
        return False


async def test_lease_survives_an_outage_shorter_than_the_ttl(own_etcd):
    store = etcd_store(own_etcd.endpoint, op_timeout_s=2)
    try:
        lost = asyncio.Event()
        lease = await store.grant_lease(5, on_lost=lost.set)
        await store.put("/short/instance", b"me", lease=lease)
        await asyncio.to_thread(own_etcd.restart)
        # A whole TTL after the restart (three refresh periods), the lease is still held.
        await asyncio.sleep(lease.ttl_s)
        assert not lease.lost and not lost.is_set()
        assert (await store.get("/short/instance")).value == b"me"
    finally:
        await store.close()


async def test_unreachable_etcd_raises_store_unavailable(tmp_path):
    store = etcd_store(f"http://127.0.0.1:{free_port()}", op_timeout_s=1)
    try:
        with pytest.raises(StoreUnavailable):
            await store.put("/x", b"y")
        with pytest.raises(StoreUnavailable):
            await store.get_prefix("/")
    finally:
        await store.close()


async def test_watch_resumes_across_restart_without_loss_or_duplicates(own_etcd):
    store = etcd_store(own_etcd.endpoint, op_timeout_s=2)
    writer = etcd_store(own_etcd.endpoint, op_timeout_s=2)
    try:
        start = await writer.revision() + 1
        watch = store.watch_prefix("/resume/", start)
        for i in range(5):
            await writer.put(f"/resume/k{i}", b"before")
        before = await collect(watch, 5, 10)

        await asyncio.to_thread(own_etcd.restart)
        for i in range(5, 10):
            await _retry(lambda i=i: writer.put(f"/resume/k{i}", b"after"))
        await writer.delete("/resume/k0")
        after = await collect(watch, 6, 20)
        events = before + after
        assert [e.key for e in events] == [f"/resume/k{i}" for i in range(10)] + ["/resume/k0"]
        revisions = [e.mod_revision for e in events]
        assert revisions == sorted(set(revisions))  # strictly increasing: no duplicates
        await watch.aclose()
    finally:
        await store.close()
        await writer.close()


async def _retry(op, timeout: float = 15):
    """A write right after a restart may meet the reconnecting channel: retry until accepted."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await op()
        except StoreUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_view_stays_correct_across_restart(own_etcd):
    store = etcd_store(own_etcd.endpoint, op_timeout_s=2)
    try:
        await store.put("/view/a", b"1")
        view = WatchedPrefix(store, "/view/", lambda _id, raw: raw.decode())
        await view.start()
        await view.synced(10)
        await asyncio.to_thread(own_etcd.stop)
        assert view.snapshot() == {"a": "1"}  # still serving while etcd is down
        await asyncio.to_thread(own_etcd.start)
        rev = await _retry(lambda: store.put("/view/b", b"2"))
        await _retry(lambda: store.delete("/view/a"))
        await view.caught_up(rev, 15)
        await eventually(lambda: view.snapshot() == {"b": "2"}, 15, "the view to follow writes after the restart")
        assert view.resyncs == 0  # resumed, no re-listing needed
        await view.close()
    finally:
        await store.close()


async def test_view_keeps_serving_through_a_partition_and_resyncs_after_compaction(own_etcd):
    proxy = await TcpProxy(own_etcd.client_port).start()
    partitioned = etcd_store(proxy.endpoint, op_timeout_s=1)
    direct = etcd_store(own_etcd.endpoint)
    try:
        await direct.put("/part/a", b"1")
        await direct.put("/part/b", b"2")
        view = WatchedPrefix(partitioned, "/part/", lambda _id, raw: raw.decode())
        changes = []
        view.on_change(changes.extend)
        await view.start()
        await view.synced(10)

        await proxy.cut()
        await direct.delete("/part/a")
        await direct.put("/part/c", b"3")
        await direct.compact(await direct.revision())
        assert view.snapshot() == {"a": "1", "b": "2"}  # last known state, still served
        changes.clear()

        await proxy.restore()
        await eventually(lambda: view.snapshot() == {"b": "2", "c": "3"}, 20, "the view to re-sync")
        assert view.resyncs == 1
        assert sorted((c.id, c.old, c.new) for c in changes) == [("a", "1", None), ("c", None, "3")]
        await view.close()
    finally:
        await partitioned.close()
        await direct.close()
        await proxy.stop()


async def test_several_endpoints_fail_over_to_a_live_one(etcd):
    dead = f"http://127.0.0.1:{free_port()}"
    store = await open_store(f"etcd:{dead},{etcd.endpoint}", None)
    store.op_timeout_s = 2
    try:
        assert await store.get("/failover/none") is None  # reads try the next endpoint
        await store.put("/failover/k", b"v")
        assert (await store.get("/failover/k")).value == b"v"
    finally:
        await store.delete("/failover/k")
        await store.close()


async def test_watch_moves_to_the_next_endpoint_without_losing_events(own_etcd):
    # Two endpoints reaching the same etcd: the first through a proxy the test can cut.
    proxy = await TcpProxy(own_etcd.client_port).start()
    store = etcd_store(f"{proxy.endpoint},{own_etcd.endpoint}", op_timeout_s=2)
    writer = etcd_store(own_etcd.endpoint)
    try:
        watch = store.watch_prefix("/fo/", await writer.revision() + 1)
        await writer.put("/fo/1", b"a")
        events = await collect(watch, 1, 10)

        # A call that times out moves the store to the next endpoint and closes the old
        # channel under the healthy watch; the watch re-opens there. (An expired deadline
        # injects the timeout deterministically.)
        store.op_timeout_s = -1
        with pytest.raises(StoreUnavailable):
            await store.get("/fo/1")
        store.op_timeout_s = 2
        await writer.put("/fo/2", b"b")
        events += await collect(watch, 1, 20)

        await proxy.cut()  # whichever endpoint it is on now, the other one still works
        await writer.put("/fo/3", b"c")
        events += await collect(watch, 1, 20)
        assert [(e.key, e.value) for e in events] == [("/fo/1", b"a"), ("/fo/2", b"b"), ("/fo/3", b"c")]
        await watch.aclose()
    finally:
        await store.close()
        await writer.close()
        await proxy.stop()


async def test_tls_with_client_certificates_from_a_connection_file(tmp_path):
    server = TlsEtcdServer(tmp_path / "etcd").start()
    try:
        pki = server.pki
        secret = tmp_path / "secret"
        secret.mkdir()
        for name in ("ca.crt", "client.crt", "client.key"):
            (secret / name).write_bytes(pki[name].read_bytes())
        conn = secret / "etcd_connection"
        conn.write_text(json.dumps({
            "endpoints": server.endpoint, "root_prefix": "tls-root",
            "certificate_file": "ca.crt",  # relative: next to the connection file
            "client_certificate_file": "client.crt", "client_key_file": "client.key",
        }))
        store = await open_store(f"etcd:{conn}", None)
        try:
            assert store.root_prefix == "tls-root"
            start = await store.revision() + 1
            watch = store.watch_prefix("tls-root/", start)
            rev = await store.put("tls-root/k", b"secure")
            ok, kv = await store.compare_and_swap("tls-root/k", rev, b"swapped")
            assert ok
            events = await collect(watch, 2, 10)
            assert [e.value for e in events] == [b"secure", b"swapped"]
            await watch.aclose()
        finally:
            await store.close()

        # Inline CA and no client certificate: the server demands one, so no connection.
        conn.write_text(json.dumps({"endpoints": server.endpoint, "certificate": pki["ca.crt"].read_text()}))
        store = await open_store(f"etcd:{conn}", None)
        store.op_timeout_s = 2
        try:
            with pytest.raises(StoreUnavailable):
                await store.put("tls-root/k", b"x")
        finally:
            await store.close()
    finally:
        server.stop()


async def test_user_password_auth_and_token_renewal_after_restart(own_etcd, tmp_path):
    await enable_auth(own_etcd.client_port, "rootpw", user="mm", password="mmpw", prefix="/mm-auth/")
    conn = tmp_path / "etcd_connection"
    conn.write_text(json.dumps({"endpoints": own_etcd.endpoint, "userid": "mm", "password": "mmpw"}))
    store = await open_store(f"etcd:{conn}", None)
    try:
        rev = await store.put("/mm-auth/k", b"v")
        lease = await store.grant_lease(10)
        await store.put("/mm-auth/leased", b"l", lease=lease)
        with pytest.raises(StoreError, match="permission denied"):
            await store.put("/elsewhere", b"x")
        watch = store.watch_prefix("/mm-auth/", rev)
        assert len(await collect(watch, 2, 10)) == 2

        # etcd forgets its auth tokens on restart; the store authenticates again.
        await asyncio.to_thread(own_etcd.restart)
        await _retry(lambda: store.put("/mm-auth/k", b"after-restart"))
        assert (await store.get("/mm-auth/k")).value == b"after-restart"
        [event] = await collect(watch, 1, 20)
        assert event.value == b"after-restart"
        await watch.aclose()
        assert not lease.lost
    finally:
        await store.close()

    conn.write_text(json.dumps({"endpoints": own_etcd.endpoint, "userid": "mm", "password": "wrong"}))
    store = await open_store(f"etcd:{conn}", None)
    try:
        with pytest.raises(StoreError, match="authentication failed"):
            await store.get("/mm-auth/k")
    finally:
        await store.close()
