"""The etcd fixture speaks the real etcd v3 protocol: put/get, prefix range, watch."""

import asyncio

import aetcd


async def test_put_get_and_watch(etcd):
    async with aetcd.Client(host="127.0.0.1", port=etcd.client_port) as client:
        put = await client.put(b"/fixture/a", b"1")
        got = await client.get(b"/fixture/a")
        assert got.value == b"1"

        # Watching from the next revision makes the test independent of watch set-up timing.
        events = await client.watch_prefix(b"/fixture/", start_revision=put.header.revision + 1)
        watched = []

        async def collect():
            async for event in events:
                watched.append((event.kv.key, event.kv.value))
                if len(watched) == 2:
                    return

        collector = asyncio.ensure_future(collect())
        await client.put(b"/fixture/b", b"2")
        await client.put(b"/fixture/c", b"3")
        await asyncio.wait_for(collector, 10)
        await events.cancel()
        assert watched == [(b"/fixture/b", b"2"), (b"/fixture/c", b"3")]

        keys = [kv.key for kv in await client.get_prefix(b"/fixture/")]
        assert keys == [b"/fixture/a", b"/fixture/b", b"/fixture/c"]
