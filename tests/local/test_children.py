"""Supervised children of `modelmesh local` with real processes (`sleep`): what holds however
many instances run."""

from __future__ import annotations

import asyncio
import os
import signal

from modelmesh.apps.local.children import Child, SupervisedGroup


async def _ready() -> bool:
    return True


async def test_many_children_leave_the_default_executor_free_and_exits_are_seen(tmp_path):
    """Waiting for a child's exit must not hold a thread of the loop's default executor: with
    a few instances (3 children each) those threads ran out and start-up hung."""
    children = [Child(f"sleeper-{i}", ["sleep", "120"], dict(os.environ), tmp_path / f"{i}.log", _ready)
                for i in range(3 * (min(32, (os.cpu_count() or 1) + 4) + 1))]
    try:
        for child in children:
            await child.start(10)
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 10) == 42
        os.kill(children[0].pid, signal.SIGKILL)
        assert await asyncio.wait_for(children[0].wait(), 10) == -signal.SIGKILL
        assert all(c.running() for c in children[1:])
    finally:
        await asyncio.gather(*(c.stop(1) for c in children))
    assert not any(c.running() for c in children)


async def test_a_group_restarts_when_a_member_dies_and_reports_it(tmp_path):
    reports: list[str] = []
    first = Child("first", ["sleep", "120"], dict(os.environ), tmp_path / "first.log", _ready)
    second = Child("second", ["sleep", "120"], dict(os.environ), tmp_path / "second.log", _ready)
    group = SupervisedGroup("pair", [first, second], reports.append, start_timeout_s=10)
    await group.start()
    try:
        old = (first.pid, second.pid)
        os.kill(second.pid, signal.SIGKILL)

        async def restarted() -> None:
            while group.restarts < 1 or group.state != "running":
                await asyncio.sleep(0.05)

        await asyncio.wait_for(restarted(), 20)
        assert first.pid != old[0] and second.pid != old[1]  # restarted together
        assert first.running() and second.running()
        assert reports[0] == "second exited (code -9); restarting pair"
        assert reports[-1] == "pair restarted (restart #1)"
    finally:
        await group.stop(grace_s=1)
    assert group.pids == [] and not first.running() and not second.running()
