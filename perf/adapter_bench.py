"""Adapter load path: loadModel through the SPI (S3 pull + layout + MLServer load) vs
MLServer's own RepositoryModelLoad of the same model already on disk (the floor).

    .venv/bin/python -m perf.adapter_bench [--cycles 10] [--burst 8]

Starts moto S3, MLServer 1.7.1 and the adapter in-process on 127.0.0.1. Prints, per
cycle kind, median and max ms of load and unload; then a burst of distinct models loaded
at once with LOADING_CONCURRENCY=2 (queued, none rejected). Work is bounded by counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import grpc  # noqa: E402

from adapters.rig import BUCKET, STORAGE_KEY, ServerRig, start_adapter, stop_adapter, upload_dir  # noqa: E402
from harness import tools  # noqa: E402
from harness.models import sklearn_iris  # noqa: E402
from harness.services import MLServer, S3Server  # noqa: E402
from modelmesh.protos import grpc_predict_v2_pb2 as v2  # noqa: E402
from modelmesh.protos import model_runtime_pb2 as rt  # noqa: E402
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub  # noqa: E402


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms   max {max(samples) * 1000:7.1f} ms"


async def bench(cycles: int, burst: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        s3 = S3Server(tmp / "s3").start()
        root = tmp / "root"
        mlserver = MLServer(tmp / "mlserver")
        mlserver.models_dir = root / "_mlserver_models"
        mlserver.start()
        try:
            iris = sklearn_iris(tmp / "src" / "iris", tools.mlserver_venv() / "bin" / "python", "iris")
            await upload_dir(s3, iris, "sklearn/iris")
            config_dir = tmp / "storage-config"
            config_dir.mkdir()
            (config_dir / STORAGE_KEY).write_text(json.dumps({
                "type": "s3", "access_key_id": s3.ACCESS_KEY, "secret_access_key": s3.SECRET_KEY,
                "endpoint_url": s3.endpoint, "region": s3.REGION, "default_bucket": BUCKET}))
            rig = ServerRig("mlserver", root, mlserver.grpc_port, config_dir)
            adapter = await start_adapter(rig.settings(LOADING_CONCURRENCY="2"))
            key = json.dumps({"storage_key": STORAGE_KEY, "model_type": {"name": "sklearn"}})
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{mlserver.grpc_port}")
            stub = GRPCInferenceServiceStub(channel)
            try:
                while (await adapter.spi.runtimeStatus(rt.RuntimeStatusRequest())).status != 1:
                    await asyncio.sleep(0.1)

                # Floor: MLServer loading a model dir that is already laid out.
                sklearn_iris(root / "_mlserver_models" / "floor", tools.mlserver_venv() / "bin" / "python", "floor")
                floor_load, floor_unload = [], []
                for _ in range(cycles):
                    t0 = time.perf_counter()
                    await stub.RepositoryModelLoad(v2.RepositoryModelLoadRequest(model_name="floor"))
                    t1 = time.perf_counter()
                    await stub.RepositoryModelUnload(v2.RepositoryModelUnloadRequest(model_name="floor"))
                    floor_load.append(t1 - t0)
                    floor_unload.append(time.perf_counter() - t1)

                spi_load, spi_unload = [], []
                for i in range(cycles):
                    t0 = time.perf_counter()
                    await adapter.spi.loadModel(rt.LoadModelRequest(modelId=f"cycle-{i}", modelPath="sklearn/iris",
                                                                    modelKey=key))
                    t1 = time.perf_counter()
                    await adapter.spi.unloadModel(rt.UnloadModelRequest(modelId=f"cycle-{i}"))
                    spi_load.append(t1 - t0)
                    spi_unload.append(time.perf_counter() - t1)

                # The pull alone (S3 list + download into the model dir), as part of the above.
                pulls = []
                for i in range(cycles):
                    t0 = time.perf_counter()
                    await adapter.service.puller.pull(f"pull-{i}", "sklearn/iris", key)
                    pulls.append(time.perf_counter() - t0)
                    await adapter.service.puller.remove(f"pull-{i}")

                t0 = time.perf_counter()
                await asyncio.gather(*(adapter.spi.loadModel(rt.LoadModelRequest(
                    modelId=f"burst-{i}", modelPath="sklearn/iris", modelKey=key)) for i in range(burst)))
                burst_s = time.perf_counter() - t0
                for i in range(burst):
                    await adapter.spi.unloadModel(rt.UnloadModelRequest(modelId=f"burst-{i}"))

                print(f"MLServer load of a laid-out dir (floor), {cycles} cycles:")
                print(f"  load   {ms(floor_load)}\n  unload {ms(floor_unload)}")
                print(f"adapter loadModel from S3 (pull + layout + load), {cycles} cycles:")
                print(f"  load   {ms(spi_load)}\n  unload {ms(spi_unload)}")
                print(f"  of which the S3 pull alone: {ms(pulls)}")
                print(f"  adapter overhead per load (median): "
                      f"{(statistics.median(spi_load) - statistics.median(floor_load)) * 1000:.1f} ms")
                print(f"burst of {burst} distinct models, LOADING_CONCURRENCY=2: {burst_s * 1000:.0f} ms total, "
                      f"{burst / burst_s:.1f} loads/s")
            finally:
                await channel.close()
                await stop_adapter(adapter)
        finally:
            mlserver.stop()
            s3.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--burst", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(bench(min(args.cycles, 200), min(args.burst, 64)))


if __name__ == "__main__":
    main()
