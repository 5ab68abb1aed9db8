"""Fixtures for the coordination store tests: one contract suite, two real backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from harness.services import EtcdServer
from kv_helpers import etcd_store

from modelmesh.kv.embedded import EmbeddedStore
from modelmesh.kv.etcd import EtcdStore


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
