"""Fixtures for the coordination store tests: one contract suite, two real backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from harness.services import EtcdServer

from modelmesh.kv.config import EtcdConnection, parse_endpoints
from modelmesh.kv.embedded import EmbeddedStore
from modelmesh.kv.etcd import EtcdStore


def etcd_store(endpoint: str, **kw) -> EtcdStore:
    return EtcdStore(EtcdConnection(endpoints=parse_endpoints(endpoint, "test")), **kw)


@pytest.fixture(scope="package")
def kv_etcd(tmp_path_factory) -> Iterator[EtcdServer]:
    """The kv tests' own etcd: they compact its history, which must not disturb the
    session-wide one other tests watch."""
    server = EtcdServer(tmp_path_factory.mktemp("kv-etcd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["etcd", "embedded"])
async def store(request, tmp_path) -> AsyncIterator[EtcdStore | EmbeddedStore]:
    """A store of each backend; tests use `prefix` so etcd needs no cleanup between tests."""
    if request.param == "etcd":
        s = etcd_store(request.getfixturevalue("kv_etcd").endpoint)
    else:
        s = EmbeddedStore(tmp_path / "state")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def prefix() -> str:
    return f"/test/{uuid.uuid4().hex[:12]}/"


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
