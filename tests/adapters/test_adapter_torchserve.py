"""The TorchServe driver against a protocol-faithful fake of TorchServe's management and
inference gRPC APIs (TorchServe cannot run on this machine; see fakes.py)."""

from __future__ import annotations

import grpc
import pytest

from adapters.fakes import CORRUPT, FakeTorchServe, Registered
from adapters.rig import start_adapter, stop_adapter, wait_runtime_ready
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import model_runtime_pb2 as rt


@pytest.fixture
async def torchserve(tmp_path):
    root = tmp_path / "models"
    fake = await FakeTorchServe(str(root / "_torchserve_models")).start()
    settings = load_settings(AdapterSettings, {
        "SERVER_TYPE": "torchserve", "RUNTIME_PORT": str(fake.port), "RUNTIME_DATA_ENDPOINT": f"port:{fake.port}",
        "ADAPTER_PORT": "0", "ROOT_MODEL_DIR": str(root), "CONTAINER_MEM_REQ_BYTES": str(1 << 30),
        "USE_EMBEDDED_PULLER": "false", "MODELSIZE_MULTIPLIER": "2.75",
    })
    adapter = await start_adapter(settings)
    pulled = tmp_path / "pulled"
    (pulled / "good").mkdir(parents=True)
    (pulled / "good" / "mnist.mar").write_bytes(b"PK archive" * 100)
    (pulled / "bad.mar").write_bytes(CORRUPT)
    (pulled / "no-archive").mkdir()
    (pulled / "no-archive" / "model.pt").write_bytes(b"x")
    try:
        yield fake, adapter, pulled
    finally:
        await stop_adapter(adapter)
        await fake.stop()


async def test_purge_unregisters_leftovers_and_writes_store_config(torchserve):
    fake, adapter, _ = torchserve
    # Registered by an earlier adapter life, more than one ListModels page.
    fake.models.update({f"old-{i}": Registered(f"old-{i}.mar", 1) for i in range(5)})
    fake.page_limit = 2
    status = await wait_runtime_ready(adapter.spi)
    assert fake.models == {}
    assert list(status.methodInfos["org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"]
                .idInjectionPath) == [1]
    config = (adapter.root / "_torchserve_models" / "mmconfig.properties").read_text()
    assert f"model_store={adapter.root / '_torchserve_models'}" in config


@pytest.mark.parametrize("path", ["good", "good/mnist.mar"])
async def test_load_size_unload(torchserve, path):
    fake, adapter, pulled = torchserve
    await wait_runtime_ready(adapter.spi)
    loaded = await adapter.spi.loadModel(rt.LoadModelRequest(modelId="mnist", modelPath=str(pulled / path)))
    assert loaded.sizeInBytes == 0  # measured by TorchServe: the mesh asks modelSize next
    (request,) = fake.register_requests
    assert (request.model_name, request.url, request.synchronous, request.initial_workers) == \
        ("mnist", "mnist.mar", True, 1)
    size = await adapter.spi.modelSize(rt.ModelSizeRequest(modelId="mnist"))
    assert size.sizeInBytes == fake.worker_memory + fake.worker_memory // 10

    await adapter.spi.unloadModel(rt.UnloadModelRequest(modelId="mnist"))
    assert "mnist" not in fake.models
    assert not (adapter.root / "_torchserve_models" / "mnist.mar").exists()
    await adapter.spi.unloadModel(rt.UnloadModelRequest(modelId="mnist"))  # NOT_FOUND is tolerated


async def test_size_falls_back_to_archive_size(torchserve):
    fake, adapter, pulled = torchserve
    fake.worker_memory = 0  # workers that never report memory
    await wait_runtime_ready(adapter.spi)
    await adapter.spi.loadModel(rt.LoadModelRequest(modelId="mnist", modelPath=str(pulled / "good")))
    size = await adapter.spi.modelSize(rt.ModelSizeRequest(modelId="mnist"))
    assert size.sizeInBytes == int(1000 * 2.75)


@pytest.mark.parametrize("path, code, message", [
    ("bad.mar", grpc.StatusCode.INTERNAL, "Failed to start workers"),
    ("no-archive", grpc.StatusCode.INVALID_ARGUMENT, "needs one model archive"),
])
async def test_failed_loads(torchserve, path, code, message):
    fake, adapter, pulled = torchserve
    await wait_runtime_ready(adapter.spi)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await adapter.spi.loadModel(rt.LoadModelRequest(modelId="broken", modelPath=str(pulled / path)))
    assert err.value.code() == code and message in err.value.details()
    assert not (adapter.root / "_torchserve_models" / "broken.mar").exists()
    assert "broken" not in fake.models


def test_torchserve_wire_names_match_torchserve():
    """Service and field numbers must be TorchServe's own, or a real TorchServe won't answer."""
    from modelmesh.protos import torchserve_inference_pb2 as inf
    from modelmesh.protos import torchserve_management_pb2 as mgmt

    service = mgmt.DESCRIPTOR.services_by_name["ManagementAPIsService"]
    assert service.full_name == "org.pytorch.serve.grpc.management.ManagementAPIsService"
    assert {"RegisterModel", "UnregisterModel", "DescribeModel", "ListModels"} <= {m.name for m in service.methods}
    assert {f.name: f.number for f in mgmt.RegisterModelRequest.DESCRIPTOR.fields} == {
        "batch_size": 1, "handler": 2, "initial_workers": 3, "max_batch_delay": 4, "model_name": 5,
        "response_timeout": 6, "runtime": 7, "synchronous": 8, "url": 9, "s3_sse_kms": 10}
    assert inf.DESCRIPTOR.services_by_name["InferenceAPIsService"].full_name == \
        "org.pytorch.serve.grpc.inference.InferenceAPIsService"
    assert {f.name: f.number for f in inf.PredictionsRequest.DESCRIPTOR.fields} == {
        "model_name": 1, "model_version": 2, "input": 3}
