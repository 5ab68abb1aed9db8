"""Mesh services on their own, in this process, over a real etcd: the task owner and the
tables' compare-and-delete."""

import asyncio

import structlog

from modelmesh.kv import open_store
from modelmesh.mesh.records import ModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.mesh.tasks import TaskOwner


async def test_task_owner_logs_failures_and_cancels_the_rest_on_close():
    owner = TaskOwner("t")
    started = asyncio.Event()

    async def fails():
        raise RuntimeError("boom")

    async def runs_forever():
        started.set()
        await asyncio.Event().wait()

    with structlog.testing.capture_logs() as logs:
        failing = owner.spawn(fails(), "fails")
        forever = owner.spawn(runs_forever(), "forever")
        await asyncio.wait([failing])
        await started.wait()
        await owner.close()
    assert forever.cancelled()
    failures = [e for e in logs if e["event"] == "background task failed"]
    assert [(f["task"], f["error"]) for f in failures] == [("t:fails", "RuntimeError('boom')")]
    assert owner.spawn(runs_forever(), "late") is None  # closed: nothing new starts
    assert len(owner) == 0


async def test_delete_if_rechecks_after_a_concurrent_write(etcd):
    store = await open_store(f"etcd:{etcd.endpoint}", None)
    prefix = "svc-test/registry/"
    mine: Table[ModelRecord] = Table(store, prefix, ModelRecord.from_json, "registry")
    theirs: Table[ModelRecord] = Table(store, prefix, ModelRecord.from_json, "registry")
    try:
        await mine.start(5)
        await theirs.start(5)
        assert await mine.create("m", ModelRecord("t"))
        await mine.wait_for("m", lambda r: r is not None, 5)
        checked: list[ModelRecord] = []

        def unreferenced(r: ModelRecord) -> bool:
            checked.append(r)
            return not r.vrefs

        # Another writer adds a reference right before our delete: whether our view has
        # seen it yet or not, the delete must not happen.
        await theirs.update("m", lambda r: r and r.referenced_by("v", 1))
        blocked = await mine.delete_if("m", unreferenced)
        assert blocked is not None and blocked.vrefs == {"v": 1}
        assert (await store.get(prefix + "m")) is not None
        # Without a reference it goes, and the view shows it gone.
        await theirs.update("m", lambda r: r and r.replace(vrefs={}))
        assert await mine.delete_if("m", unreferenced) is None
        assert mine.get("m") is None and (await store.get(prefix + "m")) is None
        assert await mine.delete_if("m", unreferenced) is None  # absent: nothing to do
    finally:
        await mine.close()
        await theirs.close()
        await store.delete_prefix("svc-test/")
        await store.close()
