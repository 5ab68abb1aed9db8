"""The per-object work queue: dedupe, one worker per key, backoff on failure, requeue."""

import asyncio

from modelmesh.controller.workqueue import WorkQueue


async def wait_for(cond, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_dedupe_and_no_concurrent_runs_per_key():
    running, runs, overlaps = {}, [], []
    gate = asyncio.Event()

    async def handler(key):
        # Recorded, not asserted here: the queue catches a handler's exceptions and retries.
        if running.get(key):
            overlaps.append(key)
        running[key] = running.get(key, 0) + 1
        runs.append(key)
        try:
            await gate.wait()
        finally:
            running[key] -= 1

    q = WorkQueue("t", handler, workers=4)
    q.start()
    try:
        for _ in range(5):
            q.add("a")
        q.add("b")
        await wait_for(lambda: len(runs) == 2)
        q.add("a")  # while "a" runs (and two workers are idle): runs once more afterwards, not concurrently
        q.add("a")
        # Give idle workers every chance to take "a" again before the first run ends.
        for _ in range(20):
            await asyncio.sleep(0)
        assert overlaps == [] and runs.count("a") == 1, "two workers on one key"
        gate.set()
        await wait_for(lambda: runs.count("a") == 2 and len(q) == 0)
        assert sorted(runs) == ["a", "a", "b"] and overlaps == []
    finally:
        await q.stop()


async def test_failure_backs_off_and_retries_then_requeue_after():
    attempts = []

    async def handler(key):
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise RuntimeError("transient")
        return 0.05 if len(attempts) == 3 else None

    q = WorkQueue("t", handler, workers=1, base_backoff_s=0.05)
    q.start()
    try:
        q.add("k")
        await wait_for(lambda: len(attempts) == 4)
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        assert gaps[0] >= 0.045 and gaps[1] >= 0.095  # exponential backoff
        assert gaps[2] >= 0.045  # requeue-after from the handler
    finally:
        await q.stop()
