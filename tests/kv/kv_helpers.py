"""Helpers of the coordination store tests (a module of its own: test modules import it by
name, which a conftest cannot be reliably)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from modelmesh.kv.config import EtcdConnection, parse_endpoints
from modelmesh.kv.etcd import EtcdStore


def etcd_store(endpoint: str, **kw) -> EtcdStore:
    return EtcdStore(EtcdConnection(endpoints=parse_endpoints(endpoint, "test")), **kw)


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Await until `check()` is true, or fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def collect(iterator, count: int, timeout: float) -> list:
    """The first `count` events of a watch iterator (batches flattened)."""
    out: list = []

    async def run() -> None:
        async for batch in iterator:
            out.extend(batch)
            if len(out) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return out
