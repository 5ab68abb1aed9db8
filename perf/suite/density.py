"""density: the point of ModelMesh. Many registered models over a few runtime pods whose
memory holds only a fraction of them; Zipf traffic; real loads through the built-in adapter.

Each pod is a real model server (MLServer with sklearn iris, or Triton for gpu-triton), the
built-in adapter (`modelmesh runtime adapter`) and a mesh instance (`modelmesh runtime`), all
processes (tests/harness/pod.py), over one etcd. Every registered model points at the same
model files with a declared size (disk_size_bytes, MODELSIZE_MULTIPLIER=1), and the adapter's
capacity (CONTAINER_MEM_REQ_BYTES) is set so that all pods together hold `room` of them: the
mesh must evict (real unloads) and load (real loads) as the traffic moves.

Measured: hit ratio (1 - requests that waited for a load / requests, from the mesh's own
modelmesh_cache_miss_milliseconds), miss latency vs the model server's own load time (floor:
load + first inference straight on the server, same model files), evictions/s, request
p50/p99, registerModel/s vs raw etcd puts/s, mesh RSS per instance, and the load generator
against a null gRPC server at the same concurrency.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from perf.suite.record import Record

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

NAME = "density"
MiB = 1024 * 1024


@dataclass
class Workload:
    models: int = 10_000
    instances: int = 2
    room_fraction: float = 0.10  # of `models`, over all instances together
    requests: int = 6_000
    concurrency: int = 8
    skew: float = 1.0  # Zipf exponent: p(rank k) ~ 1 / k**skew
    seed: int = 1
    floor_loads: int = 10  # samples of the model server's own load time
    poll_s: float = 1.0
    model_size_bytes: int = 4 * MiB  # declared per model (the adapter reports it to the mesh)
    server: str = "mlserver"

    @property
    def room_per_instance(self) -> int:
        return max(1, round(self.models * self.room_fraction / self.instances))


@dataclass
class ModelKind:
    """What the registered models are and how to talk to their server."""

    server_type: str  # RuntimePod server_type
    model_type: str
    make_source: Callable[[Path], Path]  # writes the model files once, returns their dir
    floor_copy: Callable[[Any, Path, str], Path]  # (server, source, name): lays out a copy the server loads
    request: Callable[[str], Any]  # model name -> V2 ModelInferRequest
    adapter_env: dict[str, str] = field(default_factory=dict)


def mlserver_kind() -> ModelKind:
    from harness import tools
    from harness.models import iris_request, sklearn_iris

    def make_source(work: Path) -> Path:
        return sklearn_iris(work / "source" / "iris", tools.mlserver_venv() / "bin" / "python", "iris")

    def floor_copy(server, source: Path, name: str) -> Path:
        dest = server.models_dir / name
        shutil.copytree(source, dest)
        settings = json.loads((dest / "model-settings.json").read_text())
        (dest / "model-settings.json").write_text(json.dumps({**settings, "name": name}))
        return dest

    return ModelKind("mlserver", "sklearn", make_source, floor_copy, iris_request)


class ZipfTraffic:
    """Model ids by Zipf rank (rank 1 the most popular; ranks shuffled over the ids)."""

    def __init__(self, ids: list[str], skew: float, rng: random.Random) -> None:
        self.ids = list(ids)
        rng.shuffle(self.ids)
        self.cum = list(itertools.accumulate(1.0 / (k ** skew) for k in range(1, len(ids) + 1)))
        self.rng = rng

    def next(self) -> str:
        return self.ids[bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])]


def metric_samples(url: str) -> Iterator[Any]:
    """Every sample a Prometheus endpoint exposes right now."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    for fam in text_string_to_metric_families(text):
        yield from fam.samples


def _metrics(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in metric_samples(url):
        if s.name in ("modelmesh_cache_miss_milliseconds_count", "modelmesh_cache_miss_milliseconds_sum",
                      "modelmesh_age_at_eviction_milliseconds_count", "modelmesh_loadmodel_milliseconds_count",
                      "modelmesh_loadmodel_milliseconds_sum", "modelmesh_models_loaded_total",
                      "modelmesh_loading_queue_delay_milliseconds_count",
                      "modelmesh_loading_queue_delay_milliseconds_sum",
                      "modelmesh_unloadmodel_milliseconds_count", "modelmesh_unloadmodel_milliseconds_sum"):
            out[s.name] = out.get(s.name, 0.0) + s.value
        elif s.name == "modelmesh_cache_miss_milliseconds_bucket":
            key = f"miss_le_{s.labels['le']}"
            out[key] = out.get(key, 0.0) + s.value
    return out


def _sum(snaps: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for snap in snaps:
        for k, v in snap.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _bucket_quantile(snap: dict[str, float], q: float) -> float | None:
    """Quantile of the miss histogram (linear within a bucket, as Prometheus does)."""
    buckets = sorted(((float(k[8:]), v) for k, v in snap.items() if k.startswith("miss_le_")), key=lambda b: b[0])
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_n) / (n - prev_n) if n > prev_n else 1.0)
        prev_le, prev_n = le, n
    return prev_le


async def _floor_loads(kind: ModelKind, server, source: Path, n: int) -> tuple[list[float], list[float]]:
    """The model server's own load + first inference of the same files (no mesh, no adapter),
    and its own inference latency on a loaded model (what a hit costs without the mesh)."""
    from modelmesh.protos import grpc_predict_v2_pb2 as v2
    from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    out, infers = [], []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        stub = GRPCInferenceServiceStub(ch)
        for i in range(-1, n):  # -1: a warm-up (first-load imports), not counted
            name = f"floor-{i + 1}"
            copy = await asyncio.to_thread(kind.floor_copy, server, source, name)
            t = time.perf_counter()
            await stub.RepositoryModelLoad(v2.RepositoryModelLoadRequest(model_name=name), timeout=120)
            await stub.ModelInfer(kind.request(name), timeout=60)
            if i >= 0:
                out.append((time.perf_counter() - t) * 1e3)
            if i == n - 1:
                for _ in range(50):
                    t = time.perf_counter()
                    await stub.ModelInfer(kind.request(name), timeout=60)
                    infers.append((time.perf_counter() - t) * 1e3)
            await stub.RepositoryModelUnload(v2.RepositoryModelUnloadRequest(model_name=name), timeout=60)
            # Gone from the models dir too: the pod's server shares it with the adapter, and
            # MLServer parses every model-settings.json there on each load.
            await asyncio.to_thread(shutil.rmtree, copy, True)
    return sorted(out), sorted(infers)


async def _register(targets: list[str], ids: list[str], info, conc: int = 32) -> float:
    from modelmesh.protos import model_mesh_pb2 as pb
    from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub

    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [ModelMeshStub(c) for c in channels]
    sem = asyncio.Semaphore(conc)

    async def one(i: int, mid: str) -> None:
        async with sem:
            await stubs[i % len(stubs)].registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=info),
                                                      timeout=60)
    try:
        t = time.perf_counter()
        await asyncio.gather(*(one(i, m) for i, m in enumerate(ids)))
        return len(ids) / (time.perf_counter() - t)
    finally:
        for c in channels:
            await c.close()


async def _traffic(targets: list[str], traffic: ZipfTraffic, kind: ModelKind, w: Workload,
                   metric_urls: list[str]) -> dict[str, Any]:
    """Closed loop: `concurrency` workers, `requests` in all, entry instance round-robin; the
    mesh metrics are sampled every poll_s for the over-time series."""
    from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [GRPCInferenceServiceStub(c) for c in channels]
    bodies: dict[str, Any] = {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    done_at: list[float] = []
    counter = itertools.count()
    samples: list[tuple[float, int, dict[str, float]]] = []

    async def sample(t0: float) -> None:
        snaps = await asyncio.gather(*(asyncio.to_thread(_metrics, u) for u in metric_urls))
        samples.append((time.perf_counter() - t0, len(done_at), _sum(list(snaps))))

    async def worker() -> None:
        while (i := next(counter)) < w.requests:
            mid = traffic.next()
            req = bodies.get(mid) or bodies.setdefault(mid, kind.request(mid))
            t = time.perf_counter()
            try:
                await stubs[i % len(stubs)].ModelInfer(req, metadata=(("mm-model-id", mid),), timeout=120)
                latencies.append((time.perf_counter() - t) * 1e3)
            except grpc.aio.AioRpcError as e:
                errors[e.code().name] = errors.get(e.code().name, 0) + 1
            done_at.append(time.perf_counter())

    async def poller(t0: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), w.poll_s)
            except TimeoutError:
                pass
            await sample(t0)

    try:
        t0 = time.perf_counter()
        await sample(t0)
        stop = asyncio.Event()
        poll = asyncio.ensure_future(poller(t0, stop))
        await asyncio.gather(*(worker() for _ in range(w.concurrency)))
        elapsed = time.perf_counter() - t0
        stop.set()
        await poll
    finally:
        for c in channels:
            await c.close()
    return {"latencies": sorted(latencies), "errors": errors, "seconds": elapsed, "samples": samples}


def _series(samples: list[tuple[float, int, dict[str, float]]], window_s: float = 10.0,
            min_requests: int = 50) -> dict[str, list[float]]:
    """Per sample: hit ratio, mean miss latency and evictions/s over the last `window_s`, widened
    to at least `min_requests` finished requests (a miss is counted when its request finishes, so a
    short window during a stall would show misses of requests from before it)."""
    out: dict[str, list[float]] = {"t_s": [], "hit_ratio": [], "miss_ms": [], "evictions_per_s": [],
                                   "models_loaded": []}
    for j in range(1, len(samples)):
        t1, n1, b = samples[j]
        i = j - 1
        while i > 0 and (t1 - samples[i][0] < window_s or n1 - samples[i][1] < min_requests):
            i -= 1
        t0, n0, a = samples[i]
        reqs = n1 - n0
        misses = b.get("modelmesh_cache_miss_milliseconds_count", 0) - a.get("modelmesh_cache_miss_milliseconds_count", 0)
        miss_sum = b.get("modelmesh_cache_miss_milliseconds_sum", 0) - a.get("modelmesh_cache_miss_milliseconds_sum", 0)
        ev = (b.get("modelmesh_age_at_eviction_milliseconds_count", 0)
              - a.get("modelmesh_age_at_eviction_milliseconds_count", 0))
        if reqs <= 0:
            continue
        out["t_s"].append(round(t1, 2))  # the window ending here
        out["hit_ratio"].append(max(0.0, 1 - misses / reqs))
        out["miss_ms"].append(miss_sum / misses if misses else float("nan"))
        out["evictions_per_s"].append(ev / (t1 - t0))
        out["models_loaded"].append(b.get("modelmesh_models_loaded_total", 0))
    # NaN (no miss in an interval) breaks JSON: carry the last value forward.
    last = 0.0
    for i, v in enumerate(out["miss_ms"]):
        out["miss_ms"][i] = last = last if math.isnan(v) else v
    return out


def measure(w: Workload, kind: ModelKind, name: str = NAME, work: Path | None = None,
            before_stop: Callable[[list, Record], None] | None = None) -> Record:
    """`before_stop(pods, record)`: more measurements on the same pods after the traffic."""
    from harness.pod import RuntimePod
    from harness.services import EtcdServer

    from modelmesh.protos import model_mesh_pb2 as pb
    from perf import mesh_bench, mesh_scale

    own_work = work is None
    work = work or Path(tempfile.mkdtemp(prefix=f"perf-{name}-"))
    etcd = EtcdServer(work / "etcd").start()
    pods: list[RuntimePod] = []
    (work / "storage-config").mkdir(parents=True, exist_ok=True)
    rec = Record(name, workload={**asdict(w), "room_per_instance": w.room_per_instance,
                                 "server": kind.server_type, "model_type": kind.model_type,
                                 "entry": "round-robin over instances", "traffic": "closed loop, Zipf ranks"})
    try:
        source = kind.make_source(work)
        capacity = w.room_per_instance * w.model_size_bytes
        for i in range(w.instances):
            pod = RuntimePod(work, f"{name}-{i}", kind.server_type, etcd.endpoint, work / "storage-config",
                             mesh_env={"LOG_LEVEL": "warning", "MM_SERVICE_NAME": name}, mem_req=capacity)
            pod.adapter_env.update({"USE_EMBEDDED_PULLER": "false", "MEM_BUFFER_BYTES": "0",
                                    "CONTAINER_MEM_REQ_BYTES": str(capacity), "MODELSIZE_MULTIPLIER": "1",
                                    "LOG_LEVEL": "warning", **kind.adapter_env})
            pods.append(pod)
        for pod in pods:  # one at a time: two model servers starting at once on 2 cores time out
            pod.start()
        targets = [p.mesh.target for p in pods]
        metric_urls = [f"http://127.0.0.1:{p.mesh.env['MM_METRICS'].split('port=')[1].split(';')[0]}/metrics"
                       for p in pods]
        print(f"{name}: {w.instances} pods up ({kind.server_type}); room {w.room_per_instance} models each "
              f"of {w.models}", flush=True)

        own, own_infer = asyncio.run(_floor_loads(kind, pods[0].server, source, w.floor_loads))
        raw_puts = asyncio.run(mesh_scale.raw_etcd_puts_per_s(etcd.endpoint, 2000))
        info = pb.ModelInfo(type=kind.model_type, path=str(source), key=json.dumps(
            {"model_type": {"name": kind.model_type}, "disk_size_bytes": w.model_size_bytes}))
        ids = [f"d-{i:05d}" for i in range(w.models)]
        reg_rate = asyncio.run(_register(targets, ids, info))
        print(f"{name}: registered {w.models} at {reg_rate:.0f}/s (raw etcd puts {raw_puts:.0f}/s); server's own "
              f"load+infer p50 {own[len(own) // 2]:.1f} ms; traffic: {w.requests} requests, skew {w.skew}, "
              f"concurrency {w.concurrency}", flush=True)

        traffic = ZipfTraffic(ids, w.skew, random.Random(w.seed))
        res = asyncio.run(_traffic(targets, traffic, kind, w, metric_urls))
        rss = [mesh_scale.rss_mb(p.mesh.proc.pid) for p in pods]
        body = kind.request(ids[0]).SerializeToString()
        ceiling = mesh_bench.generator_ceiling(work, [w.concurrency], 2, body)[w.concurrency]
        if before_stop is not None:
            before_stop(pods, rec)
    finally:
        for pod in pods:
            pod.stop()
        etcd.stop()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)

    lat = res["latencies"]
    first, last = res["samples"][0][2], res["samples"][-1][2]
    served = len(lat)
    misses = last.get("modelmesh_cache_miss_milliseconds_count", 0) - first.get("modelmesh_cache_miss_milliseconds_count", 0)
    miss_sum = last.get("modelmesh_cache_miss_milliseconds_sum", 0) - first.get("modelmesh_cache_miss_milliseconds_sum", 0)
    loads = last.get("modelmesh_loadmodel_milliseconds_count", 0) - first.get("modelmesh_loadmodel_milliseconds_count", 0)
    load_sum = last.get("modelmesh_loadmodel_milliseconds_sum", 0) - first.get("modelmesh_loadmodel_milliseconds_sum", 0)
    evictions = (last.get("modelmesh_age_at_eviction_milliseconds_count", 0)
                 - first.get("modelmesh_age_at_eviction_milliseconds_count", 0))
    seconds = res["seconds"]
    own_p50 = own[len(own) // 2]
    own_mean = sum(own) / len(own)
    miss_hist = {k: last.get(k, 0) - first.get(k, 0) for k in last if k.startswith("miss_le_")}

    rec.figure("hit_ratio", max(0.0, 1 - misses / max(1, served + sum(res["errors"].values()))))
    rec.figure("requests", served)
    rec.figure("errors", sum(res["errors"].values()))
    rec.figure("misses", misses)
    rec.figure("loads", loads)
    rec.figure("evictions", evictions)
    rec.figure("evictions_per_s", evictions / seconds)
    rec.figure("models_loaded_at_end", last.get("modelmesh_models_loaded_total", 0))
    rec.compare("request_rps", served / seconds, f"generator_ceiling_rps_c{w.concurrency}", ceiling)
    if lat:
        rec.compare("request_p50_ms", lat[len(lat) // 2], "runtime_infer_p50_ms", own_infer[len(own_infer) // 2])
        rec.compare("request_p99_ms", lat[int(len(lat) * 0.99)], "runtime_infer_p99_ms",
                    own_infer[int(len(own_infer) * 0.99)])
    if misses:
        rec.compare("miss_mean_ms", miss_sum / misses, "runtime_load_mean_ms", own_mean)
        for q in (0.5, 0.99):
            v = _bucket_quantile(miss_hist, q)
            if v is not None:
                rec.compare(f"miss_p{int(q * 100)}_ms", v, "runtime_load_p50_ms", own_p50)
    if loads:
        rec.compare("mesh_load_mean_ms", load_sum / loads, "runtime_load_mean_ms", own_mean)
    # Where a miss waits besides the load itself: for a loading slot, and (before the unload
    # buffer) for the unload of the model evicted to make room.
    for figure, metric in (("loading_queue_mean_ms", "modelmesh_loading_queue_delay_milliseconds"),
                           ("unload_mean_ms", "modelmesh_unloadmodel_milliseconds")):
        n = last.get(f"{metric}_count", 0) - first.get(f"{metric}_count", 0)
        if n:
            rec.figure(figure, (last.get(f"{metric}_sum", 0) - first.get(f"{metric}_sum", 0)) / n)
    rec.compare("register_model_per_s", reg_rate, "raw_etcd_puts_per_s", raw_puts)
    for i, r in enumerate(rss):
        rec.figure(f"mesh_rss_mb_instance_{i}", r)
    rec.figure("mesh_rss_mb_mean", sum(rss) / len(rss))
    if res["errors"]:
        rec.notes.append(f"request errors by code: {res['errors']}")
    rec.notes.append("miss latency: the mesh's modelmesh_cache_miss_milliseconds (p50/p99 interpolated in its "
                     "buckets); runtime_load: the model server's own load + first inference of the same files")
    series = _series(res["samples"], window_s=max(5.0, 5 * w.poll_s))
    series["runtime_load_ms"] = own_p50
    rec.series = {"over_time": {"kind": "over_time", "series": series,
                                "title": f"{name}: {w.models} models, room {w.room_fraction:.0%}, Zipf s={w.skew}, "
                                         f"{w.instances} pods"}}
    return rec


def run(quick: bool, skew: float = 1.0, **_) -> Record:
    # Quick: same shape (room 10%), fewer models and requests so that it ends in a few minutes.
    w = Workload(models=2000, requests=2500, skew=skew) if quick else Workload(skew=skew)
    return measure(w, mlserver_kind())
