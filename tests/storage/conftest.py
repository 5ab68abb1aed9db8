"""Fixtures for the puller: storage emulators (azurite, GCS emulator), an HTTPS model host
with self-signed certificates, and a per-test layout (model root, storage-config dir, PVC root)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.azurite import AzuriteServer
from harness.gcs import GcsEmulator
from storage_helpers import Certs, S3Seeder, openssl

from modelmesh.storage import Puller


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[AzuriteServer]:
    svc = AzuriteServer(tmp_path_factory.mktemp("azurite")).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory) -> Iterator[GcsEmulator]:
    svc = GcsEmulator(tmp_path_factory.mktemp("gcs")).start()
    try:
        yield svc
    finally:
        svc.stop()


@dataclass
class Layout:
    root: Path  # ROOT_MODEL_DIR
    configs: Path  # STORAGE_CONFIG_DIR
    pvc: Path  # PVC mounts root

    def write_config(self, key: str, config: dict[str, Any]) -> None:
        (self.configs / key).write_text(json.dumps(config))

    def puller(self, **kwargs: Any) -> Puller:
        return Puller(str(self.root), str(self.configs), pvc_mounts_root=str(self.pvc), **kwargs)

    def leftovers(self) -> list[str]:
        """Everything under the root, staging included (empty after a failed pull)."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.name != ".pulling")


@pytest.fixture
def layout(tmp_path) -> Layout:
    lay = Layout(tmp_path / "models", tmp_path / "storage-config", tmp_path / "pvc_mounts")
    for d in (lay.root, lay.configs, lay.pvc):
        d.mkdir()
    return lay


@pytest.fixture
async def puller(layout) -> AsyncIterator[Puller]:
    p = layout.puller()
    yield p
    await p.close()


@pytest.fixture(scope="session")
def s3_seed(s3_server) -> S3Seeder:
    return S3Seeder(s3_server)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", d / "ca.key", "-out", d / "ca.pem")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", d / f"{name}.key",
                 "-out", d / f"{name}.csr")
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", d / f"{name}.ext", "-out", d / f"{name}.pem")
    return Certs((d / "ca.pem").read_text(), d / "server.pem", d / "server.key",
                 (d / "client.pem").read_text(), (d / "client.key").read_text(), d / "ca.pem")
