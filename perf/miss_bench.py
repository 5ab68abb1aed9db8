"""Where a cache miss's time goes: one pod (MLServer + built-in adapter + mesh, all
processes) whose capacity holds `--room` models, filled, then `--misses` sequential misses,
each of which evicts the least recently used model.

    .venv/bin/python -m perf.miss_bench [--room 100] [--misses 30]

Per miss: the client's ModelInfer latency; the mesh's own histograms (cache miss, loading
queue delay, loadModel, unloadModel, sizing; deltas of _sum between misses); the adapter's
stage timings from its "model loaded" log lines (queued, layout, server = MLServer's
RepositoryModelLoad). Floors in the same run: MLServer's own load + first inference of the same
files (a) with an empty models dir and (b) with the models dir as full as the adapter keeps it
(`room` models loaded). No timed assertions; figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import grpc  # noqa: E402

from perf.suite import density  # noqa: E402

STAGES = {  # label -> mesh histogram (per miss: delta of its _sum)
    "mesh cache miss": "modelmesh_cache_miss_milliseconds",
    "mesh loading queue": "modelmesh_loading_queue_delay_milliseconds",
    "mesh loadModel call": "modelmesh_loadmodel_milliseconds",
    "mesh unloadModel call": "modelmesh_unloadmodel_milliseconds",
    "mesh modelSize call": "modelmesh_model_sizing_milliseconds",
}
ADAPTER_STAGES = ("queued_s", "layout_s", "server_s")


def _sums(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in density.metric_samples(url):
        if s.name.endswith("_sum"):
            out[s.name[:-4]] = out.get(s.name[:-4], 0.0) + s.value
    return out


def _adapter_loads(log: Path) -> dict[str, dict[str, float]]:
    out = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "model loaded" and "server_s" in rec:
            out[rec["model_id"]] = {k: rec.get(k, 0.0) * 1000 for k in ADAPTER_STAGES}
    return out


async def _floor(kind, server, source: Path, n: int, tag: str) -> list[float]:
    from modelmesh.protos import grpc_predict_v2_pb2 as v2
    from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    out = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        stub = GRPCInferenceServiceStub(ch)
        for i in range(-1, n):
            name = f"floor-{tag}-{i + 1}"
            await asyncio.to_thread(kind.floor_copy, server, source, name)
            t = time.perf_counter()
            await stub.RepositoryModelLoad(v2.RepositoryModelLoadRequest(model_name=name), timeout=120)
            await stub.ModelInfer(kind.request(name), timeout=60)
            if i >= 0:
                out.append((time.perf_counter() - t) * 1e3)
            await stub.RepositoryModelUnload(v2.RepositoryModelUnloadRequest(model_name=name), timeout=60)
            await asyncio.to_thread(shutil.rmtree, server.models_dir / name)
    return out


async def _requests(target: str, kind, ids: list[str]) -> list[float]:
    from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    out = []
    async with grpc.aio.insecure_channel(target) as ch:
        stub = GRPCInferenceServiceStub(ch)
        for mid in ids:
            t = time.perf_counter()
            await stub.ModelInfer(kind.request(mid), metadata=(("mm-model-id", mid),), timeout=120)
            out.append((time.perf_counter() - t) * 1e3)
    return out


def _fmt(samples: list[float]) -> str:
    if not samples:
        return "-"
    s = sorted(samples)
    return f"p50 {statistics.median(s):7.1f}  mean {statistics.fmean(s):7.1f}  max {s[-1]:7.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--room", type=int, default=100, help="models the pod holds")
    ap.add_argument("--misses", type=int, default=30)
    ap.add_argument("--floor-loads", type=int, default=10)
    args = ap.parse_args()
    room, misses = min(args.room, 1000), min(args.misses, 500)

    from harness.pod import RuntimePod
    from harness.services import EtcdServer

    from modelmesh.protos import model_mesh_pb2 as pb

    kind = density.mlserver_kind()
    size = 4 * density.MiB
    work = Path(tempfile.mkdtemp(prefix="perf-miss-"))
    etcd = EtcdServer(work / "etcd").start()
    (work / "storage-config").mkdir()
    pod = RuntimePod(work, "miss-0", "mlserver", etcd.endpoint, work / "storage-config",
                     mesh_env={"LOG_LEVEL": "warning", "MM_SERVICE_NAME": "miss"}, mem_req=room * size)
    pod.adapter_env.update({"USE_EMBEDDED_PULLER": "false", "MEM_BUFFER_BYTES": "0",
                            "CONTAINER_MEM_REQ_BYTES": str(room * size), "MODELSIZE_MULTIPLIER": "1",
                            "LOG_LEVEL": "info"})
    try:
        source = kind.make_source(work)
        pod.start()
        metrics = f"http://127.0.0.1:{pod.mesh.metrics_port}/metrics"
        empty_floor = asyncio.run(_floor(kind, pod.server, source, args.floor_loads, "empty"))
        info = pb.ModelInfo(type=kind.model_type, path=str(source), key=json.dumps(
            {"model_type": {"name": kind.model_type}, "disk_size_bytes": size}))
        ids = [f"m-{i:04d}" for i in range(room + misses)]
        asyncio.run(density._register([pod.mesh.target], ids, info))
        fill = asyncio.run(_requests(pod.mesh.target, kind, ids[:room]))  # misses without evictions
        full_floor = asyncio.run(_floor(kind, pod.server, source, args.floor_loads, "full"))

        client, stages = [], {k: [] for k in STAGES}
        for mid in ids[room:]:
            before = _sums(metrics)
            client += asyncio.run(_requests(pod.mesh.target, kind, [mid]))
            after = _sums(metrics)
            for label, name in STAGES.items():
                stages[label].append(after.get(name, 0.0) - before.get(name, 0.0))
        adapter = _adapter_loads(pod.workdir / "adapter.log")
        evicting = [adapter[m] for m in ids[room:] if m in adapter]
        filling = [adapter[m] for m in ids[:room] if m in adapter]
    finally:
        pod.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"miss bench: 1 pod (MLServer), room {room} models, {misses} sequential misses each evicting one; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'':34s} {'ms':>8s}")
    print(f"{'MLServer load+infer, empty dir':34s} {_fmt(empty_floor)}")
    print(f"{'MLServer load+infer, full dir':34s} {_fmt(full_floor)}")
    print(f"{'miss while filling (no eviction)':34s} {_fmt(fill)}")
    print(f"{'miss with eviction (client)':34s} {_fmt(client)}")
    for label, vals in stages.items():
        print(f"  {label:32s} {_fmt(vals)}")
    for k in ADAPTER_STAGES:
        print(f"  {'adapter ' + k + ' (evicting)':32s} {_fmt([a[k] for a in evicting])}")
    print(f"  {'adapter server_s (filling)':32s} {_fmt([a['server_s'] for a in filling])}")


if __name__ == "__main__":
    main()
