"""Fixtures for the coordination store tests: one contract suite, three real backends: etcd,
the embedded store, and our etcd driver talking to the embedded store through its etcd front."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from harness.services import EtcdServer
from kv_helpers import etcd_store

from modelmesh.kv.embedded import EmbeddedStore
from modelmesh.kv.etcd import EtcdStore
from modelmesh.kv.etcd_front import EtcdFront


@pytest.fixture(scope="package")
def kv_etcd(tmp_path_factory) -> Iterator[EtcdServer]:
    """The kv tests' own etcd: they compact its history, which must not disturb the
    session-wide one other tests watch."""
    server = EtcdServer(tmp_path_factory.mktemp("kv-etcd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["etcd", "embedded", "etcd-front"])
async def store(request, tmp_path) -> AsyncIterator[EtcdStore | EmbeddedStore]:
    """A store of each backend; tests use `prefix` so etcd needs no cleanup between tests."""
    front = backing = None
    if request.param == "etcd":
        s = etcd_store(request.getfixturevalue("kv_etcd").endpoint)
    elif request.param == "etcd-front":
        backing = EmbeddedStore(tmp_path / "state")
        front = await EtcdFront(backing).start()
        s = etcd_store(front.endpoint)
    else:
        s = EmbeddedStore(tmp_path / "state")
    try:
        yield s
    finally:
        await s.close()
        if front is not None:
            await front.stop()
            await backing.close()


@pytest.fixture
def prefix() -> str:
    return f"/test/{uuid.uuid4().hex[:12]}/"
