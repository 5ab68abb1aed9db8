"""scale: how one mesh instance grows with registered models (perf.mesh_scale): RSS,
registerModel/s vs raw etcd puts/s, hit latency vs the same request straight to the runtime."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from perf import mesh_bench, mesh_scale
from perf.suite.record import Record

NAME = "scale"


def run(quick: bool, **_) -> Record:
    steps = (1000, 5000, 10000) if quick else (1000, 10000, 25000, 50000)
    hits = 100 if quick else 200
    res = asyncio.run(mesh_scale.run(steps, hits))
    rec = Record(NAME, workload={"registered_steps": list(steps), "hits_per_step": hits, "mesh_instances": 1,
                                 "registration_concurrency": 32,
                                 "runtime": "tests/harness/test_runtime (SPI + protobuf ModelInfer)"})
    with tempfile.TemporaryDirectory(prefix="scale-ceiling-") as tmp:
        ceiling = mesh_bench.generator_ceiling(Path(tmp), [1], 1 if quick else 3, mesh_bench.infer_bytes("m", 8))[1]
    rec.figure("rss_mb_empty", res["rss_mb_empty"])
    for row in res["rows"]:
        n = row["registered"]
        rec.figure(f"rss_mb_at_{n}", row["rss_mb"])
        rec.compare(f"register_model_per_s_to_{n}", row["reg_per_s"], "raw_etcd_puts_per_s",
                    res["raw_etcd_puts_per_s"])
        rec.compare(f"hit_p50_ms_at_{n}", row["hit_p50_ms"], f"direct_p50_ms_at_{n}", row["direct_p50_ms"])
        rec.compare(f"hit_p99_ms_at_{n}", row["hit_p99_ms"], f"direct_p99_ms_at_{n}", row["direct_p99_ms"])
        rec.compare(f"hits_per_s_at_{n}", 1000 / row["hit_mean_ms"], "generator_ceiling_rps_c1", ceiling)
    first, last = res["rows"][0], res["rows"][-1]
    if last["registered"] > first["registered"]:
        rec.figure("kb_per_registered_model",
                   (last["rss_mb"] - first["rss_mb"]) * 1024 / (last["registered"] - first["registered"]))
    rec.notes.append("hits are sequential (concurrency 1); generator_ceiling_rps_c1: the same kind of client "
                     "against a null gRPC server")
    rec.series = {"memory": {"kind": "memory", "title": "scale: mesh RSS vs registered models", "series": {
        "registered": [0] + [r["registered"] for r in res["rows"]],
        "rss_mb": [res["rss_mb_empty"]] + [r["rss_mb"] for r in res["rows"]]}}}
    return rec
