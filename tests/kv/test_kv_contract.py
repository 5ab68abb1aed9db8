"""The KVStore contract, run against both backends (real etcd, the embedded store)."""

from __future__ import annotations

import asyncio

import pytest
from kv_helpers import collect, eventually

from modelmesh.kv import EventType, LeaseLost, WatchCompacted, WatchedPrefix


async def test_put_get_and_sorted_prefix_listing(store, prefix):
    assert await store.get(prefix + "missing") is None
    r1 = await store.put(prefix + "b", b"2")
    r2 = await store.put(prefix + "a", b"1")
    await store.put(prefix[:-1] + "-sibling/x", b"outside")  # shares the text before the '/'
    assert r2 > r1
    kv = await store.get(prefix + "a")
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"1", r2, r2)

    r3 = await store.put(prefix + "a", b"1b")
    kv = await store.get(prefix + "a")
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"1b", r3, r2)

    kvs, revision = await store.get_prefix(prefix)
    assert [(k.key, k.value) for k in kvs] == [(prefix + "a", b"1b"), (prefix + "b", b"2")]
    assert revision >= r3
    assert await store.revision() >= r3


async def test_compare_and_swap_create_update_and_conflict(store, prefix):
    key = prefix + "rec"
    ok, kv = await store.compare_and_swap(key, 0, b"v1")
    assert ok and kv.value == b"v1" and kv.create_revision == kv.mod_revision
    first = kv

    ok, current = await store.compare_and_swap(key, 0, b"again")  # create, but it exists
    assert not ok and current == first

    ok, kv = await store.compare_and_swap(key, first.mod_revision, b"v2")
    assert ok and kv.value == b"v2" and kv.create_revision == first.create_revision
    assert kv.mod_revision > first.mod_revision

    ok, current = await store.compare_and_swap(key, first.mod_revision, b"stale")
    assert not ok and current.value == b"v2" and current.mod_revision == kv.mod_revision
    assert (await store.get(key)).value == b"v2"

    ok, current = await store.compare_and_swap(prefix + "absent", 7, b"x")
    assert not ok and current is None
    assert await store.get(prefix + "absent") is None


async def test_concurrent_writers_exactly_one_wins(store, prefix):
    key = prefix + "contended"
    base = await store.put(key, b"base")
    results = await asyncio.gather(*(store.compare_and_swap(key, base, f"w{i}".encode()) for i in range(16)))
    winners = [i for i, (ok, _) in enumerate(results) if ok]
    assert len(winners) == 1
    assert (await store.get(key)).value == f"w{winners[0]}".encode()
    for ok, current in results:
        if not ok:
            assert current.value == f"w{winners[0]}".encode()

    # Creation races too: many writers, expected revision 0.
    results = await asyncio.gather(*(store.compare_and_swap(prefix + "new", 0, b"%d" % i) for i in range(16)))
    assert sum(ok for ok, _ in results) == 1


async def test_compare_and_delete(store, prefix):
    key = prefix + "k"
    rev = await store.put(key, b"v")
    ok, current = await store.compare_and_delete(key, rev - 1)
    assert not ok and current.mod_revision == rev
    assert await store.get(key) is not None
    ok, current = await store.compare_and_delete(key, rev)
    assert ok and current is None
    assert await store.get(key) is None


async def test_delete_and_delete_prefix_stay_inside_the_prefix(store, prefix):
    for k in ("a/1", "a/2", "a2", "b"):
        await store.put(prefix + k, b"x")
    assert await store.delete(prefix + "b") is True
    assert await store.delete(prefix + "b") is False
    assert await store.delete_prefix(prefix + "a/") == 2
    kvs, _ = await store.get_prefix(prefix)
    assert [k.key for k in kvs] == [prefix + "a2"]


async def test_watch_replays_history_then_follows_live_writes(store, prefix):
    r1 = await store.put(prefix + "a", b"1")
    await store.put(prefix + "b", b"2")
    await store.put(prefix[:-1] + "-other", b"not watched")
    watch = store.watch_prefix(prefix, r1)
    first = await collect(watch, 2, 10)
    assert [(e.type, e.key, e.value) for e in first] == [
        (EventType.PUT, prefix + "a", b"1"), (EventType.PUT, prefix + "b", b"2")]

    await store.delete(prefix + "a")
    await store.put(prefix + "c", b"3")
    live = await collect(watch, 2, 10)
    assert [(e.type, e.key, e.value) for e in live] == [
        (EventType.DELETE, prefix + "a", b""), (EventType.PUT, prefix + "c", b"3")]
    assert live[0].mod_revision < live[1].mod_revision
    await watch.aclose()


async def test_watch_delivers_a_multi_key_delete_as_one_batch(store, prefix):
    for k in "abc":
        await store.put(prefix + k, b"x")
    start = await store.revision() + 1
    watch = store.watch_prefix(prefix, start)
    deleted = await store.delete_prefix(prefix)
    batch = await asyncio.wait_for(anext(watch), 10)
    assert deleted == 3
    assert [(e.type, e.key) for e in batch] == [(EventType.DELETE, prefix + k) for k in "abc"]
    assert len({e.mod_revision for e in batch}) == 1
    await watch.aclose()


async def test_watch_from_compacted_revision_raises(store, prefix):
    r1 = await store.put(prefix + "a", b"1")
    r2 = await store.put(prefix + "a", b"2")
    await store.compact(r2)
    with pytest.raises(WatchCompacted) as info:
        await asyncio.wait_for(anext(store.watch_prefix(prefix, r1)), 10)
    assert info.value.compact_revision >= r2


async def test_revoked_lease_deletes_its_keys(store, prefix):
    lease = await store.grant_lease(30)
    await store.put(prefix + "leased", b"x", lease=lease)
    ok, _ = await store.compare_and_swap(prefix + "leased-cas", 0, b"y", lease=lease)
    assert ok
    await store.put(prefix + "durable", b"z")
    assert (await store.get(prefix + "leased")).lease == lease.id
    await lease.revoke()
    assert lease.lost
    kvs, _ = await store.get_prefix(prefix)
    assert [k.key for k in kvs] == [prefix + "durable"]
    with pytest.raises(LeaseLost):
        await store.put(prefix + "late", b"x", lease=lease)


@pytest.mark.parametrize("async_callback", [False, True])
async def test_lease_not_kept_alive_expires_and_reports_loss(store, prefix, async_callback):
    lost = asyncio.Event()
    if async_callback:
        async def on_lost():
            lost.set()
    else:
        on_lost = lost.set
    lease = await store.grant_lease(1, on_lost=on_lost, keep_alive=False)
    await store.put(prefix + "k", b"x", lease=lease)
    await asyncio.wait_for(lost.wait(), lease.ttl_s + 10)
    assert lease.lost
    await eventually(lambda: _absent(store, prefix + "k"), 10, "the leased key to expire")


async def _absent(store, key: str) -> bool:
    return await store.get(key) is None


async def test_kept_alive_lease_outlives_its_ttl(store, prefix):
    lost = asyncio.Event()
    lease = await store.grant_lease(1, on_lost=lost.set)  # etcd grants at least 2 s
    await store.put(prefix + "k", b"x", lease=lease)
    # The behaviour under test is time passing: three TTLs without loss.
    await asyncio.sleep(3 * lease.ttl_s)
    assert not lease.lost and not lost.is_set()
    assert (await store.get(prefix + "k")).value == b"x"
    await lease.revoke()


async def test_view_follows_the_prefix_and_reports_changes(store, prefix):
    await store.put(prefix + "m1", b"1")
    await store.put(prefix + "bad", b"not-a-number")
    seen_sync, seen_async = [], []

    async def record_async(changes):
        seen_async.extend(changes)

    view = WatchedPrefix(store, prefix, lambda _id, raw: int(raw))
    view.on_change(seen_sync.extend)
    view.on_change(record_async)
    await view.start()
    await view.synced(10)
    assert view.snapshot() == {"m1": 1}  # "bad" is left out, not fatal
    assert view.decode_errors == 1
    assert [(c.id, c.old, c.new) for c in seen_sync] == [("m1", None, 1)]

    rev = await store.put(prefix + "m2", b"2")
    await view.caught_up(rev, 10)
    assert view.get("m2") == 2 and view.entry("m2").mod_revision == rev

    # The view's revision is the CAS token for the next update.
    ok, kv = await store.compare_and_swap(prefix + "m2", view.entry("m2").mod_revision, b"22")
    assert ok
    await view.caught_up(kv.mod_revision, 10)
    rev = await store.put(prefix + "bad", b"3")  # a fixed record enters the view
    await view.caught_up(rev, 10)
    deleted_at = await store.delete_prefix(prefix + "m1")
    assert deleted_at == 1
    await eventually(lambda: "m1" not in view, 10, "the delete to reach the view")
    assert view.snapshot() == {"m2": 22, "bad": 3}
    assert [(c.id, c.old, c.new) for c in seen_sync] == [
        ("m1", None, 1), ("m2", None, 2), ("m2", 2, 22), ("bad", None, 3), ("m1", 1, None)]
    assert seen_async == seen_sync
    await view.close()


async def test_view_resyncs_after_compaction_with_the_difference_as_changes(store, prefix):
    view = WatchedPrefix(store, prefix, lambda _id, raw: raw.decode())
    await store.put(prefix + "keep", b"k")
    await store.put(prefix + "drop", b"d")
    changes = []
    view.on_change(changes.extend)
    await view.start()
    await view.synced(10)
    await view.close()  # the view stops watching; history moves on and is compacted

    await store.delete(prefix + "drop")
    await store.put(prefix + "new", b"n")
    await store.compact(await store.revision())
    changes.clear()
    await view.start()  # resumes its watch from its last revision: compacted, so it re-lists
    await eventually(lambda: "new" in view, 10, "the view to re-sync")
    assert view.resyncs == 1
    assert view.snapshot() == {"keep": "k", "new": "n"}
    assert sorted((c.id, c.old, c.new) for c in changes) == [("drop", "d", None), ("new", None, "n")]
    await view.close()


async def test_watch_from_now_and_from_a_future_revision(store, prefix):
    await store.put(prefix + "old", b"0")
    future_start = await store.revision() + 3
    future = store.watch_prefix(prefix, future_start)
    pending_future = asyncio.ensure_future(collect(future, 1, 10))

    # "From now" starts when the watch is established, so write until it reports something.
    now = store.watch_prefix(prefix, 0)
    first = asyncio.ensure_future(anext(now))
    for i in range(500):
        if first.done() and i >= 3:  # and at least three ticks, for the future watch
            break
        await store.put(prefix + f"tick{i:03d}", b"x")
        await asyncio.wait([first], timeout=0.02)
    batch = await asyncio.wait_for(first, 10)
    assert batch and all(e.key.startswith(prefix + "tick") for e in batch)  # never "old"

    events = await pending_future
    assert [e.key for e in events] == [prefix + "tick002"] and events[0].mod_revision == future_start
    await now.aclose()
    await future.aclose()


async def test_listing_order_and_prefix_bounds_agree_across_backends(store, prefix):
    keys = [prefix + k for k in ("a", "a/b", "a0", "z", "é", "日本", "\U0001f600")]
    for k in reversed(keys):
        await store.put(k, b"x")
    await store.put(prefix[:-1] + "0", b"just past the prefix")
    kvs, _ = await store.get_prefix(prefix)
    assert [k.key for k in kvs] == sorted(keys)  # UTF-8 byte order == code point order
    assert [k.key for k in (await store.get_prefix(prefix + "a"))[0]] == [prefix + "a", prefix + "a/b", prefix + "a0"]


async def test_compare_and_swap_many_is_per_key(store, prefix):
    ok, existing = await store.compare_and_swap(prefix + "exists", 0, b"v0")
    assert ok
    results = await store.compare_and_swap_many([
        (prefix + "new-a", 0, b"a", None),
        (prefix + "exists", 0, b"clobber", None),  # expected absent: fails, returns the current value
        (prefix + "new-b", 0, b"b", None),
        (prefix + "other", 0, b"o", None),
    ])
    assert [r[0] for r in results] == [True, False, True, True]
    assert results[1][1].value == b"v0"
    assert (await store.get(prefix + "new-a")).value == b"a"
    assert (await store.get(prefix + "exists")).value == b"v0"
    assert results[0][1].mod_revision == (await store.get(prefix + "new-a")).mod_revision
