"""Fixtures for the adapter tests: a model server whose model repository is the adapter's
layout dir, S3 buckets holding real models, and an in-process adapter on a free port.

MLServer and Triton get their own instances here (not the shared session ones) because
their repository must be `<ROOT_MODEL_DIR>/_<server>_models` and the adapter's start-up
purge unloads everything the server has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.rig import RunningAdapter, ServerRig, start_adapter, stop_adapter
from harness.services import MLServer, Triton


@pytest.fixture(scope="session")
def mlserver_rig(tmp_path_factory, storage_config_dir) -> Iterator[ServerRig]:
    root = tmp_path_factory.mktemp("mlserver-root")
    svc = MLServer(tmp_path_factory.mktemp("mlserver-run"))
    svc.models_dir = root / "_mlserver_models"  # MLServer's repository = the adapter's layout dir
    svc.start()
    try:
        yield ServerRig("mlserver", root, svc.grpc_port, storage_config_dir)
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def triton_rig(tmp_path_factory, storage_config_dir) -> Iterator[ServerRig]:
    root = tmp_path_factory.mktemp("triton-root")
    svc = Triton(tmp_path_factory.mktemp("triton-run"))
    svc.repo = root / "_triton_models"
    svc.start()
    try:
        yield ServerRig("triton", root, svc.grpc_port, storage_config_dir)
    finally:
        svc.stop()


@pytest.fixture
async def mlserver_adapter(mlserver_rig) -> AsyncIterator[RunningAdapter]:
    adapter = await start_adapter(mlserver_rig.settings())
    try:
        yield adapter
    finally:
        await stop_adapter(adapter)


@pytest.fixture
async def triton_adapter(triton_rig) -> AsyncIterator[RunningAdapter]:
    adapter = await start_adapter(triton_rig.settings())
    try:
        yield adapter
    finally:
        await stop_adapter(adapter)


