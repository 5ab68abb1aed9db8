"""How a mesh instance grows with registered models: RSS, registration rate and hit latency
at 1k / 10k / 50k registered models (one instance, one runtime, etcd).

    .venv/bin/python -m perf.mesh_scale [--steps 1000,10000,50000] [--hits 200]

Floors from the same run: raw etcd puts/s (aetcd, same concurrency) for the registration rate,
and the same hit sent straight to the runtime for the hit latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from harness.mesh import MeshProcess, TestRuntimeProcess  # noqa: E402
from harness.mesh_client import Client, register_many  # noqa: E402
from harness.services import EtcdServer  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


async def raw_etcd_puts_per_s(endpoint: str, n: int, conc: int = 32) -> float:
    import aetcd

    host, port = endpoint.rsplit("//", 1)[1].split(":")
    sem = asyncio.Semaphore(conc)
    async with aetcd.Client(host=host, port=int(port)) as client:
        async def put(i: int) -> None:
            async with sem:
                await client.put(f"/bench/raw/{i}".encode(), b'{"type":"test","mPath":"/models/x"}')
        t = time.perf_counter()
        await asyncio.gather(*(put(i) for i in range(n)))
        return n / (time.perf_counter() - t)


async def hit_latencies(client: Client, model_id: str, n: int, direct: bool = False) -> list[float]:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        if direct:  # straight to the runtime: no routing header
            await client.v2.ModelInfer(_request(model_id), timeout=30)
        else:
            await client.infer(model_id)
        lat.append((time.perf_counter() - t0) * 1e3)
    return sorted(lat)


def _request(model_id: str):
    from harness.mesh_client import infer_request

    req = infer_request()
    req.model_name = model_id
    return req


async def run(steps: tuple[int, ...] = (1000, 10000, 50000), hits: int = 200) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mesh-scale-"))
    etcd = EtcdServer(work / "etcd").start()
    rt = TestRuntimeProcess(work, "s", capacity=10**12).start()
    mesh = MeshProcess(work, "s", etcd.endpoint, rt.port,
                       extra_env={"LOG_LEVEL": "warning", "MM_METRICS": "none"}).start()
    c, direct = Client(mesh.target), Client(f"127.0.0.1:{rt.port}")
    rows = []
    out = {"rows": rows, "hits": hits}
    try:
        out["raw_etcd_puts_per_s"] = await raw_etcd_puts_per_s(etcd.endpoint, min(steps[0], 2000))
        out["rss_mb_empty"] = rss_mb(mesh.proc.pid)
        print(f"registered      0: mesh RSS {out['rss_mb_empty']:.0f} MB; raw etcd puts "
              f"{out['raw_etcd_puts_per_s']:.0f}/s", flush=True)
        total = 0
        for target in steps:
            ids = [f"m-{i:06d}" for i in range(total, target)]
            t = time.perf_counter()
            await register_many(c, ids)
            el = time.perf_counter() - t
            total = target
            await c.infer("m-000000")  # loads it (the first time)
            lat = await hit_latencies(c, "m-000000", hits)
            floor = await hit_latencies(direct, "m-000000", hits, direct=True)
            row = {"registered": total, "rss_mb": rss_mb(mesh.proc.pid), "reg_per_s": len(ids) / el,
                   "hit_p50_ms": lat[len(lat) // 2], "hit_p99_ms": lat[int(len(lat) * 0.99)],
                   "hit_mean_ms": sum(lat) / len(lat),
                   "direct_p50_ms": floor[len(floor) // 2], "direct_p99_ms": floor[int(len(floor) * 0.99)]}
            rows.append(row)
            print(f"registered {total:6d}: mesh RSS {row['rss_mb']:.0f} MB, {row['reg_per_s']:.0f} reg/s, "
                  f"hit p50 {row['hit_p50_ms']:.2f} ms p99 {row['hit_p99_ms']:.2f} ms "
                  f"(direct p50 {row['direct_p50_ms']:.2f} ms)", flush=True)
    finally:
        await c.close()
        await direct.close()
        mesh.stop()
        rt.stop()
        etcd.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="1000,10000,50000")
    ap.add_argument("--hits", type=int, default=200)
    args = ap.parse_args()
    asyncio.run(run(tuple(int(s) for s in args.steps.split(",")), args.hits))


if __name__ == "__main__":
    main()
