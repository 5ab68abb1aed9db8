"""The OVMS driver against a protocol-faithful fake of OVMS's REST config API (OVMS cannot
run on this machine; see fakes.py): batched config reloads, per-model load outcome from
the version status, unload via config removal, start-up purge."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from adapters.fakes import CORRUPT, FakeOvms
from adapters.rig import start_adapter, stop_adapter, wait_runtime_ready
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import model_runtime_pb2 as rt


@pytest.fixture
async def ovms(tmp_path):
    root = tmp_path / "models"
    config_file = root / "model_config_list.json"
    fake = await FakeOvms(str(config_file)).start()
    settings = load_settings(AdapterSettings, {
        "SERVER_TYPE": "ovms", "RUNTIME_PORT": str(fake.port), "ADAPTER_PORT": "0", "ROOT_MODEL_DIR": str(root),
        "CONTAINER_MEM_REQ_BYTES": str(1 << 30), "USE_EMBEDDED_PULLER": "false", "LOADING_CONCURRENCY": "4",
    })
    adapter = await start_adapter(settings)
    models = tmp_path / "pulled"
    for name, content in (("good-a", b"ir"), ("good-b", b"ir"), ("good-c", b"ir"), ("bad", CORRUPT)):
        (models / name / "1").mkdir(parents=True)
        (models / name / "1" / "model.xml").write_bytes(content)
    try:
        yield fake, adapter, models, config_file
    finally:
        await stop_adapter(adapter)
        await fake.stop()


def configured(config_file) -> dict[str, str]:
    return {m["config"]["name"]: m["config"]["base_path"]
            for m in json.loads(config_file.read_text())["model_config_list"]}


async def test_runtime_status_and_methods(ovms):
    fake, adapter, _, config_file = ovms
    status = await wait_runtime_ready(adapter.spi)
    assert status.runtimeVersion == "2024.4"
    assert list(status.methodInfos["tensorflow.serving.PredictionService/Predict"].idInjectionPath) == [1, 1]
    assert configured(config_file) == {} and fake.reloads == 1  # the purge wrote an empty config


async def test_concurrent_loads_share_one_reload_and_failures_are_isolated(ovms):
    fake, adapter, models, config_file = ovms
    await wait_runtime_ready(adapter.spi)
    reloads_before = fake.reloads
    calls = [adapter.spi.loadModel(rt.LoadModelRequest(modelId=name, modelType="openvino_ir",
                                                       modelPath=str(models / name)))
             for name in ("good-a", "good-b", "good-c", "bad")]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, rt.LoadModelResponse) for r in results[:3]), results
    bad = results[3]
    assert isinstance(bad, grpc.aio.AioRpcError) and bad.code() == grpc.StatusCode.INTERNAL
    assert "Error while loading a model" in bad.details()
    # One reload for the whole batch, then one that drops the failed model again.
    good = {"good-a", "good-b", "good-c"}
    assert fake.reloaded_sets[reloads_before:] == [good | {"bad"}, good]
    assert fake.statuses["bad"][0]["state"] == "END"
    assert set(configured(config_file)) == {"good-a", "good-b", "good-c"}
    assert configured(config_file)["good-a"] == str(adapter.root / "_ovms_models" / "good-a")
    assert not (adapter.root / "_ovms_models" / "bad").exists()


async def test_unload_removes_from_config_after_reload(ovms):
    fake, adapter, models, config_file = ovms
    await wait_runtime_ready(adapter.spi)
    await adapter.spi.loadModel(rt.LoadModelRequest(modelId="good-a", modelPath=str(models / "good-a")))
    assert fake.statuses["good-a"][0]["state"] == "AVAILABLE"
    await adapter.spi.unloadModel(rt.UnloadModelRequest(modelId="good-a"))
    assert fake.statuses["good-a"][0]["state"] == "END"  # OVMS has let go before files are removed
    assert configured(config_file) == {}
    assert not (adapter.root / "_ovms_models" / "good-a").exists()
    await adapter.spi.unloadModel(rt.UnloadModelRequest(modelId="never-loaded"))
