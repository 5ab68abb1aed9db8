"""The generic ModelRuntime servicer's own rules: loading concurrency, load timeout,
cancellation cleanup, sizes and the READY gate.

The model server here is a fault-injecting fake driver (a load that blocks until
released, hangs, or is slow): real servers cannot be made to hang on cue. The servicer,
its gRPC server and the file layout are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import grpc
import pytest

from adapters.rig import start_adapter, stop_adapter
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import model_runtime_pb2 as rt


class GatedDriver:
    """Lays a model out as a dir; `load` waits for `gate` (or forever when `hang`)."""

    display_name = "Fake"
    method_infos = {"inference.GRPCInferenceService/ModelInfer": (1,)}
    reports_size = False

    def __init__(self, layout_root: str) -> None:
        self.layout_root = layout_root
        self.gate = asyncio.Event()
        self.hang = False
        self.ready = True
        self.active = 0
        self.peak = 0
        self.loaded: set[str] = set()
        self.unloads: list[str] = []
        self.unload_all_calls = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def is_ready(self) -> bool:
        return self.ready

    async def version(self) -> str:
        return "9.8.7"

    def lay_out(self, model_id, model_type, model_path, schema_path) -> str:
        target = os.path.join(self.layout_root, model_id)
        os.makedirs(target)
        os.symlink(model_path, os.path.join(target, "model"))
        return target

    async def load(self, model_id: str, laid_out: str) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.hang:
                await asyncio.Event().wait()
            await self.gate.wait()
            self.loaded.add(model_id)
        finally:
            self.active -= 1

    async def unload(self, model_id: str) -> None:
        self.unloads.append(model_id)
        self.loaded.discard(model_id)

    async def unload_all(self) -> None:
        self.unload_all_calls += 1
        self.loaded.clear()

    async def model_size(self, model_id: str) -> int | None:
        return None


def settings(root: Path, **env: str) -> AdapterSettings:
    base = {"CONTAINER_MEM_REQ_BYTES": str(1 << 30), "ADAPTER_PORT": "0", "ROOT_MODEL_DIR": str(root),
            "USE_EMBEDDED_PULLER": "false", "LOADING_CONCURRENCY": "2", "LIMIT_PER_MODEL_CONCURRENCY": "3"}
    return load_settings(AdapterSettings, {**base, **env})


@pytest.fixture
async def rig(tmp_path):
    root = tmp_path / "models"
    model = tmp_path / "model.bin"
    model.write_bytes(b"w" * 100)
    driver = GatedDriver(str(root / "_fake_models"))
    started = []

    async def make(**env):
        adapter = await start_adapter(settings(root, **env), driver=driver)
        started.append(adapter)
        return adapter

    yield driver, make, str(model)
    for adapter in started:
        await stop_adapter(adapter)


async def wait_for(check, what: str, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_loads_queue_beyond_loading_concurrency(rig):
    driver, make, model = rig
    adapter = await make()
    calls = [asyncio.ensure_future(adapter.spi.loadModel(rt.LoadModelRequest(modelId=f"m{i}", modelPath=model)))
             for i in range(6)]
    await wait_for(lambda: driver.active == 2, "two loads in progress")
    assert not any(c.done() for c in calls)  # the others wait; none is rejected
    driver.gate.set()
    replies = await asyncio.gather(*calls)
    assert driver.peak == 2
    assert driver.loaded == {f"m{i}" for i in range(6)}
    assert {r.maxConcurrency for r in replies} == {3}


async def test_load_timeout_undoes_everything(rig):
    driver, make, model = rig
    driver.hang = True
    adapter = await make(LOADTIME_TIMEOUT="300")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await adapter.spi.loadModel(rt.LoadModelRequest(modelId="slow", modelPath=model))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timed out after 300 ms" in err.value.details()
    assert driver.unloads == ["slow"]
    assert not os.path.exists(os.path.join(driver.layout_root, "slow"))


async def test_cancelled_load_is_undone(rig):
    driver, make, model = rig
    driver.hang = True
    adapter = await make()
    call = adapter.spi.loadModel(rt.LoadModelRequest(modelId="cancelled", modelPath=model))
    await wait_for(lambda: driver.active == 1, "the load to reach the server")
    call.cancel()  # the mesh gives up on the load
    await wait_for(lambda: driver.unloads == ["cancelled"], "the unload after cancellation")
    await wait_for(lambda: not os.path.exists(os.path.join(driver.layout_root, "cancelled")), "layout removal")
    assert driver.active == 0


async def test_sizes(rig):
    driver, make, model = rig
    driver.gate.set()
    adapter = await make(MODELSIZE_MULTIPLIER="2.5", DEFAULT_MODELSIZE="777")
    known = await adapter.spi.loadModel(rt.LoadModelRequest(
        modelId="known", modelPath=model, modelKey=json.dumps({"disk_size_bytes": 1000})))
    unknown = await adapter.spi.loadModel(rt.LoadModelRequest(modelId="unknown", modelPath=model))
    assert (known.sizeInBytes, unknown.sizeInBytes) == (2500, 777)
    assert (await adapter.spi.modelSize(rt.ModelSizeRequest(modelId="known"))).sizeInBytes == 2500
    predicted = await adapter.spi.predictModelSize(rt.PredictModelSizeRequest(
        modelId="p", modelKey=json.dumps({"disk_size_bytes": 400})))
    assert predicted.sizeInBytes == 1000
    assert (await adapter.spi.predictModelSize(rt.PredictModelSizeRequest(modelId="q"))).sizeInBytes == 777


async def test_ready_only_after_server_ready_and_purge(rig, tmp_path):
    driver, make, model = rig
    leftover = Path(driver.layout_root) / "from-a-past-life"
    leftover.mkdir(parents=True)
    driver.ready = False
    adapter = await make(RUNTIME_VERSION="")
    status = await adapter.spi.runtimeStatus(rt.RuntimeStatusRequest())
    assert status.status == rt.RuntimeStatusResponse.STARTING
    assert driver.unload_all_calls == 0 and leftover.exists()

    driver.ready = True
    status = await adapter.spi.runtimeStatus(rt.RuntimeStatusRequest())
    assert status.status == rt.RuntimeStatusResponse.READY
    assert (status.runtimeVersion, status.numericRuntimeVersion) == ("9.8.7", 9008007)
    assert status.limitModelConcurrency
    assert driver.unload_all_calls == 1 and not leftover.exists()
    await adapter.spi.runtimeStatus(rt.RuntimeStatusRequest())
    assert driver.unload_all_calls == 1  # purged once per adapter life, not on every poll
