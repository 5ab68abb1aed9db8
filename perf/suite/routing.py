"""routing: what the mesh adds per request (perf.mesh_bench).

ModelInfer through one mesh instance vs straight to the runtime (floor: direct) and vs a bare
grpc.aio raw-bytes hop (floor: the grpc-hop floor, as shared/tools/grpc-hop-floor), at several
concurrencies; server CPU per request of mesh vs hop; cache-miss latency vs the runtime's own
load; registerModel/s vs raw etcd puts/s; the gRPC load generator against a null server.
"""

from __future__ import annotations

from perf import mesh_bench
from perf.suite.record import Record

NAME = "routing"


def run(quick: bool, **_) -> Record:
    opts = {"seconds": 2, "conc_levels": (1, 8, 32), "misses": 10, "registrations": 1000} if quick else \
        {"seconds": 5, "conc_levels": (1, 4, 8, 16, 32), "misses": 30, "registrations": 2000}
    res = mesh_bench.run(**opts)
    rec = Record(NAME, workload={"request": f"V2 ModelInfer, {res['payload']} B FP32 input, one loaded model",
                                 "runtime": "tests/harness/test_runtime (SPI + protobuf ModelInfer)",
                                 "mesh_instances": 1, "seconds_per_cell": res["seconds"],
                                 "concurrency": list(opts["conc_levels"]), "pinned": res["pinned"],
                                 "misses": opts["misses"], "registrations": opts["registrations"]})
    latency = {p: {"conc": [], "p50_ms": [], "p99_ms": []} for p in ("direct", "floor", "mesh")}
    rps = {p: {"conc": [], "rps": []} for p in ("direct", "floor", "mesh", "load generator ceiling")}
    for row in res["rows"]:
        c = row["conc"]
        d, f, m = row["direct"], row["floor"], row["mesh"]
        rec.compare(f"mesh_rps_c{c}", m["rps"], f"direct_rps_c{c}", d["rps"])
        rec.compare(f"mesh_rps_vs_hop_c{c}", m["rps"], f"grpc_hop_rps_c{c}", f["rps"])
        rec.compare(f"mesh_p50_ms_c{c}", m["p50_ms"], f"direct_p50_ms_c{c}", d["p50_ms"])
        rec.compare(f"mesh_p99_ms_c{c}", m["p99_ms"], f"direct_p99_ms_c{c}", d["p99_ms"])
        rec.compare(f"mesh_cpu_ms_per_req_c{c}", m["cpu_ms_per_req"], f"grpc_hop_cpu_ms_per_req_c{c}",
                    f["cpu_ms_per_req"])
        rec.compare(f"direct_rps_vs_generator_c{c}", d["rps"], f"generator_ceiling_rps_c{c}", res["ceiling_rps"][c])
        for p, v in (("direct", d), ("floor", f), ("mesh", m)):
            latency[p]["conc"].append(c)
            latency[p]["p50_ms"].append(v["p50_ms"])
            latency[p]["p99_ms"].append(v["p99_ms"])
            rps[p]["conc"].append(c)
            rps[p]["rps"].append(v["rps"])
        rps["load generator ceiling"]["conc"].append(c)
        rps["load generator ceiling"]["rps"].append(res["ceiling_rps"][c])
    rec.compare("miss_p50_ms", res["miss"]["mesh_p50_ms"], "runtime_load_p50_ms", res["miss"]["runtime_load_p50_ms"])
    r = res["registrations"]
    rec.compare("register_model_per_s", r["register_model_per_s"], "raw_etcd_puts_per_s", r["raw_etcd_puts_per_s"])
    latency["grpc hop (floor)"] = latency.pop("floor")
    rps["grpc hop (floor)"] = rps.pop("floor")
    rec.series = {
        "latency": {"kind": "latency", "title": "routing: ModelInfer latency vs concurrency", "series": latency},
        "throughput": {"kind": "throughput", "title": "routing: throughput, mesh vs direct and the bare hop",
                       "series": rps},
    }
    return rec
