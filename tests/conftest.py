"""Session-wide fixtures: the real components, started once per test session.

Tests that need to break a component (restart etcd, kill a runtime) start their own with
the classes in harness.services instead of using these shared ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.s3_models import upload_test_models, write_storage_config
from harness.services import EtcdServer, KubeApiServer, MLServer, S3Server, Triton


def _serve(service_cls, tmp_path_factory, name: str):
    svc = service_cls(tmp_path_factory.mktemp(name))
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def etcd(tmp_path_factory) -> Iterator[EtcdServer]:
    yield from _serve(EtcdServer, tmp_path_factory, "etcd")


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory) -> Iterator[KubeApiServer]:
    yield from _serve(KubeApiServer, tmp_path_factory, "kube")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    yield from _serve(S3Server, tmp_path_factory, "s3")


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory) -> Iterator[MLServer]:
    yield from _serve(MLServer, tmp_path_factory, "mlserver")


@pytest.fixture(scope="session")
def triton(tmp_path_factory) -> Iterator[Triton]:
    yield from _serve(Triton, tmp_path_factory, "triton")


@pytest.fixture(scope="session")
def storage_config_dir(tmp_path_factory, s3_server: S3Server):
    """A storage-config secret dir whose key `localS3` points at the session S3 server."""
    return write_storage_config(tmp_path_factory.mktemp("storage-config"), s3_server)


@pytest.fixture(scope="session")
async def s3_models(tmp_path_factory, s3_server: S3Server) -> dict[str, str]:
    """Real models uploaded to the session S3 server: name -> S3 path (harness.s3_models)."""
    return await upload_test_models(s3_server, tmp_path_factory.mktemp("model-src"))
