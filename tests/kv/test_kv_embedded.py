"""The embedded store's durability: restarts, crashes, torn writes, snapshots, locking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from modelmesh.kv import StoreError, WatchCompacted, open_store
from modelmesh.kv.embedded import LOG_NAME, EmbeddedStore


async def test_acknowledged_writes_survive_restart_and_leased_keys_do_not(tmp_path):
    store = EmbeddedStore(tmp_path)
    await store.put("/r/plain", b"1")
    ok, swapped = await store.compare_and_swap("/r/plain", (await store.get("/r/plain")).mod_revision, b"2")
    assert ok
    await store.put("/r/gone", b"x")
    await store.delete("/r/gone")
    await store.put("/r/durable-then-leased", b"durable")
    lease = await store.grant_lease(60)
    await store.put("/r/leased", b"l", lease=lease)
    await store.put("/r/durable-then-leased", b"leased now", lease=lease)
    last = await store.revision()
    await store.close()

    store = EmbeddedStore(tmp_path)
    try:
        kvs, revision = await store.get_prefix("/r/")
        assert [(k.key, k.value) for k in kvs] == [("/r/plain", b"2")]
        assert kvs[0].mod_revision == swapped.mod_revision
        assert kvs[0].create_revision == swapped.create_revision
        assert revision == last  # revisions never go back
        assert await store.put("/r/next", b"n") == last + 1
        # Watch history does not survive a restart: older start revisions are compacted.
        with pytest.raises(WatchCompacted):
            await anext(store.watch_prefix("/r/", last))
    finally:
        await store.close()


async def test_writes_acknowledged_before_a_crash_are_kept(tmp_path):
    # A child process writes, prints each acknowledged key, then is killed mid-stream.
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        from modelmesh.kv.embedded import EmbeddedStore

        async def main():
            store = EmbeddedStore({str(tmp_path)!r})
            lease = await store.grant_lease(60)
            await store.put("/crash/leased", b"x", lease=lease)
            for i in range(200):
                await store.put(f"/crash/k{{i:03d}}", b"v%d" % i)
                print(i, flush=True)
                if i == 150:
                    os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acked = [int(line) for line in proc.stdout.split()]
    assert acked[-1] == 150

    store = EmbeddedStore(tmp_path)
    try:
        kvs, _ = await store.get_prefix("/crash/")
        assert [k.key for k in kvs] == [f"/crash/k{i:03d}" for i in acked]  # the leased key is gone
        assert kvs[-1].value == b"v150"
    finally:
        await store.close()


async def test_a_torn_last_record_is_dropped_and_the_rest_kept(tmp_path):
    store = EmbeddedStore(tmp_path)
    await store.put("/t/a", b"1")
    await store.put("/t/b", b"2")
    await store.close()
    log = tmp_path / LOG_NAME
    data = log.read_bytes()
    log.write_bytes(data[:-3])  # the last write was cut short (crash mid-write)

    store = EmbeddedStore(tmp_path)
    try:
        kvs, _ = await store.get_prefix("/t/")
        assert [(k.key, k.value) for k in kvs] == [("/t/a", b"1")]
        await store.put("/t/c", b"3")  # appends after the valid part
    finally:
        await store.close()
    store = EmbeddedStore(tmp_path)
    try:
        assert [k.key for k in (await store.get_prefix("/t/"))[0]] == ["/t/a", "/t/c"]
    finally:
        await store.close()


async def test_log_is_compacted_into_a_snapshot(tmp_path):
    store = EmbeddedStore(tmp_path)
    try:
        for i in range(25_000):
            await store.put(f"/s/k{i % 10}", b"x" * 20)
        size = os.path.getsize(tmp_path / LOG_NAME)
        assert size < 10_000 * 60  # rewritten: far below 25,000 records
        final = {k.key: k.mod_revision for k in (await store.get_prefix("/s/"))[0]}
    finally:
        await store.close()
    store = EmbeddedStore(tmp_path)
    try:
        assert {k.key: k.mod_revision for k in (await store.get_prefix("/s/"))[0]} == final
        assert await store.revision() == 25_000
    finally:
        await store.close()


async def test_one_store_per_state_dir(tmp_path):
    store = EmbeddedStore(tmp_path)
    try:
        with pytest.raises(StoreError, match="in use by another process"):
            EmbeddedStore(tmp_path)
    finally:
        await store.close()
    await EmbeddedStore(tmp_path).close()  # free again once closed


async def test_open_store_picks_the_backend(tmp_path):
    store = await open_store("", tmp_path)
    try:
        assert isinstance(store, EmbeddedStore) and store.root_prefix == ""
        await store.put("/o/k", b"v")
    finally:
        await store.close()
    assert (tmp_path / LOG_NAME).exists()
    memory = await open_store("", None)
    await memory.put("/o/k", b"v")
    await memory.close()
