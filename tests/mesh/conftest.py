"""Fixtures for mesh tests: instances as real processes over a real etcd."""

from __future__ import annotations

import pytest

from harness.mesh import MeshNode
from harness.mesh_client import Client

MB = 1_000_000


@pytest.fixture
def nodes(tmp_path):
    """Start mesh nodes on demand; every node is stopped at the end of the test."""
    started: list[MeshNode] = []

    def start(etcd, name: str, capacity: int = 100 * MB, **kw) -> MeshNode:
        node = MeshNode(tmp_path, name, etcd.endpoint, capacity, **kw)
        started.append(node)
        return node.start()

    yield start
    for node in started:
        try:
            node.stop()
        except Exception:  # noqa: BLE001
            pass
    # A mesh that crashed, hung on SIGTERM or logged an error fails the test that ran it.
    problems = [p for node in started for p in node.mesh.problems()]
    if problems:
        pytest.fail("mesh instances misbehaved:\n" + "\n".join(problems[:20]), pytrace=False)


@pytest.fixture
async def client_for():
    clients: list[Client] = []

    def make(node_or_target) -> Client:
        target = node_or_target if isinstance(node_or_target, str) else node_or_target.mesh.target
        c = Client(target)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
def private_etcd(tmp_path):
    """An etcd of the test's own, for tests that stop or restart it or count its calls."""
    from harness.services import EtcdServer

    server = EtcdServer(tmp_path / "etcd").start()
    yield server
    server.stop()
