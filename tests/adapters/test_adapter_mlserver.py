"""The adapter in front of a real MLServer: sklearn models pulled from a real S3 (moto)
endpoint are loaded, inferred and unloaded through the ModelRuntime SPI."""

from __future__ import annotations

import grpc
import pytest

from adapters.rig import (
    MEM_BUFFER, MEM_REQ, data_plane, infer_iris, leftovers, ready_in_server, s3_key, start_adapter, stop_adapter,
    wait_runtime_ready,
)
from harness.models import IRIS_SAMPLES
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_runtime_pb2 as rt


async def test_runtime_status_ready_with_settings(mlserver_adapter, s3_models):
    status = await wait_runtime_ready(mlserver_adapter.spi)
    assert status.capacityInBytes == MEM_REQ - MEM_BUFFER
    assert status.maxLoadingConcurrency == 2
    assert status.modelLoadingTimeoutMs == 90000
    assert status.defaultModelSizeInBytes == 1000000
    assert status.runtimeVersion == "1.7.1"  # MLServer's own ServerMetadata version
    assert {k: list(v.idInjectionPath) for k, v in status.methodInfos.items()} == {
        "inference.GRPCInferenceService/ModelInfer": [1], "inference.GRPCInferenceService/ModelMetadata": [1]}
    assert not status.limitModelConcurrency


@pytest.mark.parametrize("path_name", ["iris", "iris-file"])
async def test_load_infer_unload_from_s3(mlserver_rig, mlserver_adapter, s3_models, path_name):
    """A native dir (settings rewritten to the model id) and a lone model.joblib
    (settings generated for type sklearn) both load, serve and unload."""
    spi = mlserver_adapter.spi
    model_id = f"iris-{path_name}__isvc-0123456789"
    await wait_runtime_ready(spi)
    loaded = await spi.loadModel(rt.LoadModelRequest(
        modelId=model_id, modelType="mt:sklearn", modelPath=s3_models[path_name], modelKey=s3_key("sklearn")))
    pulled = mlserver_adapter.root / model_id
    disk = sum(p.stat().st_size for p in pulled.rglob("*") if p.is_file())
    assert loaded.sizeInBytes == int(disk * 1.25) and disk > 0

    channel, stub = data_plane(mlserver_rig)
    async with channel:
        assert await infer_iris(stub, model_id) == [c for _, c in IRIS_SAMPLES]
        await spi.unloadModel(rt.UnloadModelRequest(modelId=model_id))
        assert not await ready_in_server(stub, model_id)
        with pytest.raises(grpc.aio.AioRpcError):
            await infer_iris(stub, model_id)
    assert leftovers(mlserver_adapter.root, model_id) == []


async def test_loaded_models_leave_mlservers_repository_scan(mlserver_rig, mlserver_adapter, s3_models):
    """MLServer parses every model-settings.json under its models dir on each load, so a
    loaded model's settings are hidden from that scan: its own index no longer lists loaded
    models, yet they serve, load again under the same id, and unload without leftovers."""
    spi = mlserver_adapter.spi
    ids = [f"scan-{i}__isvc-000000001{i}" for i in range(2)]
    await wait_runtime_ready(spi)
    for model_id in ids:
        await spi.loadModel(rt.LoadModelRequest(
            modelId=model_id, modelType="mt:sklearn", modelPath=s3_models["iris"], modelKey=s3_key("sklearn")))
    layout_root = mlserver_adapter.root / "_mlserver_models"
    assert [p for p in layout_root.glob("**/model-settings.json") if p.parent.name in ids] == []

    channel, stub = data_plane(mlserver_rig)
    async with channel:
        index = await stub.RepositoryIndex(v2.RepositoryIndexRequest())
        assert not {m.name for m in index.models} & set(ids)
        for model_id in ids:
            assert await infer_iris(stub, model_id) == [c for _, c in IRIS_SAMPLES]
        # Loaded again under the same id (the mesh does so when the server lost a model).
        await spi.loadModel(rt.LoadModelRequest(
            modelId=ids[0], modelType="mt:sklearn", modelPath=s3_models["iris"], modelKey=s3_key("sklearn")))
        assert await infer_iris(stub, ids[0]) == [c for _, c in IRIS_SAMPLES]
        for model_id in ids:
            await spi.unloadModel(rt.UnloadModelRequest(modelId=model_id))
            assert not await ready_in_server(stub, model_id)
            assert leftovers(mlserver_adapter.root, model_id) == []


async def test_corrupt_model_fails_clearly_and_leaves_nothing(mlserver_rig, mlserver_adapter, s3_models):
    model_id = "corrupt__isvc-0000000001"
    await wait_runtime_ready(mlserver_adapter.spi)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mlserver_adapter.spi.loadModel(rt.LoadModelRequest(
            modelId=model_id, modelType="mt:sklearn", modelPath=s3_models["corrupt"], modelKey=s3_key("sklearn")))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert f"MLServer failed to load model {model_id}: " in err.value.details()
    assert leftovers(mlserver_adapter.root, model_id) == []
    channel, stub = data_plane(mlserver_rig)
    async with channel:
        assert not await ready_in_server(stub, model_id)


@pytest.mark.parametrize("model_key, path, code, message", [
    ("{}", "sklearn/iris", grpc.StatusCode.INVALID_ARGUMENT, "Predictor Storage field missing"),
    ('{"storage_key": "nope"}', "sklearn/iris", grpc.StatusCode.INVALID_ARGUMENT, "nope"),
    ("not json", "sklearn/iris", grpc.StatusCode.INVALID_ARGUMENT, "modelKey"),
    ('{"storage_key": "localS3"}', "sklearn/does-not-exist", grpc.StatusCode.INTERNAL, "sklearn/does-not-exist"),
])
async def test_bad_requests_get_clear_errors(mlserver_adapter, s3_models, model_key, path, code, message):
    model_id = "bad__isvc-0000000002"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mlserver_adapter.spi.loadModel(rt.LoadModelRequest(
            modelId=model_id, modelType="mt:sklearn", modelPath=path, modelKey=model_key))
    assert err.value.code() == code
    assert message in err.value.details()
    assert leftovers(mlserver_adapter.root, model_id) == []


@pytest.mark.parametrize("model_id", ["", "..", "a/b", "_mlserver_models"])
async def test_invalid_model_ids_are_refused(mlserver_adapter, model_id):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mlserver_adapter.spi.loadModel(rt.LoadModelRequest(modelId=model_id, modelPath="x", modelKey="{}"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unload_of_unknown_model_is_tolerated(mlserver_adapter):
    # MLServer itself answers INVALID_ARGUMENT for this; the mesh must see success.
    await mlserver_adapter.spi.unloadModel(rt.UnloadModelRequest(modelId="never-loaded__isvc-0000000003"))


async def test_restarted_adapter_purges_leftovers_before_ready(mlserver_rig, s3_models):
    """A model loaded by an adapter that then died is unloaded (and its files removed)
    by the next adapter before it reports READY."""
    model_id = "leftover__isvc-0000000004"
    first = await start_adapter(mlserver_rig.settings())
    try:
        await wait_runtime_ready(first.spi)
        await first.spi.loadModel(rt.LoadModelRequest(
            modelId=model_id, modelType="mt:sklearn", modelPath=s3_models["iris"], modelKey=s3_key("sklearn")))
    finally:
        await stop_adapter(first)  # no unload: as if the adapter container restarted
    channel, stub = data_plane(mlserver_rig)
    async with channel:
        assert await ready_in_server(stub, model_id)
        assert leftovers(mlserver_rig.root, model_id)

        second = await start_adapter(mlserver_rig.settings())
        try:
            await wait_runtime_ready(second.spi)
            assert not await ready_in_server(stub, model_id)
            assert leftovers(mlserver_rig.root, model_id) == []
            assert (mlserver_rig.root / "_mlserver_models" / "settings.json").exists()  # the server's own file stays
        finally:
            await stop_adapter(second)
