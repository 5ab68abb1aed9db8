"""rest-proxy: KServe V2 REST through the proxy vs V2 gRPC straight to Triton
(perf.rest_proxy_bench), with the proxy as one process and as REST_PROXY_WORKERS=N processes
on one port, in the same run; the REST client against a null HTTP server is its ceiling."""

from __future__ import annotations

import os

from perf import rest_proxy_bench
from perf.suite.record import Record

NAME = "rest-proxy"


def run(quick: bool, workers: int | None = None, **_) -> Record:
    argv = ["--levels", "1,8,32", "--seconds", "2" if quick else "3", "--rounds", "1" if quick else "2"]
    if quick:
        argv.append("--no-large")
    if workers:
        argv += ["--workers", str(workers)]
    args = rest_proxy_bench.parser().parse_args(argv)
    res = rest_proxy_bench.run_bench(args)
    n = res["workers"][-1]
    rec = Record(NAME, workload={"server": "Triton 2.51, python backend `doubler` (CPU)",
                                 "request": "V2 infer, 4 FP32 (small)" + ("" if quick else "; 16,384 FP32 (large)"),
                                 "concurrency": [1, 8, 32], "seconds": args.seconds, "rounds": args.rounds,
                                 "proxy_workers": res["workers"], "cpus": os.cpu_count()})
    by = {(r["size"], r["conc"], r["path"]): r for r in res["rows"]}
    ceiling = {r["conc"]: r for r in res["ceiling"]}
    latency: dict = {}
    rps: dict = {}
    for (size, conc, path), r in by.items():
        grpc = by[(size, conc, "grpc direct")]
        if size == "small":
            latency.setdefault(path, {"conc": [], "p50_ms": [], "p99_ms": []})
            rps.setdefault(path, {"conc": [], "rps": []})
            latency[path]["conc"].append(conc)
            latency[path]["p50_ms"].append(r["p50_ms"])
            latency[path]["p99_ms"].append(r["p99_ms"])
            rps[path]["conc"].append(conc)
            rps[path]["rps"].append(r["rps"])
        if path == "grpc direct":
            continue
        label = path.replace("rest workers=", "workers_").replace("rest binary ext", "binary_ext_workers_1")
        rec.compare(f"rest_rps_{size}_c{conc}_{label}", r["rps"], f"grpc_direct_rps_{size}_c{conc}", grpc["rps"])
        rec.compare(f"rest_p50_ms_{size}_c{conc}_{label}", r["p50_ms"], f"grpc_direct_p50_ms_{size}_c{conc}",
                    grpc["p50_ms"])
        if r.get("proxy_cpu_ms_per_req") is not None:
            rec.figure(f"proxy_cpu_ms_per_req_{size}_c{conc}_{label}", r["proxy_cpu_ms_per_req"])
    for conc, r in ceiling.items():
        rps.setdefault("load generator ceiling", {"conc": [], "rps": []})
        rps["load generator ceiling"]["conc"].append(conc)
        rps["load generator ceiling"]["rps"].append(r["rps"])
        best = max(by[("small", conc, f"rest workers={w}")]["rps"] for w in res["workers"])
        rec.compare(f"rest_best_rps_small_c{conc}_vs_generator", best, f"rest_generator_ceiling_rps_c{conc}", r["rps"])
    # The headline: REST/gRPC at concurrency 8 (small), for 1 and N workers.
    for w in res["workers"]:
        rest = by[("small", 8, f"rest workers={w}")]["rps"]
        rec.figure(f"rest_vs_grpc_workers_{w}", rest / by[("small", 8, "grpc direct")]["rps"])
    if n == 1:
        rec.notes.append("only one worker count measured (--workers 1)")
    rec.series = {
        "latency": {"kind": "latency", "title": "rest-proxy: latency vs concurrency (4 floats)", "series": latency},
        "throughput": {"kind": "throughput", "title": f"rest-proxy: REST via 1 and {n} proxy workers vs gRPC direct",
                       "series": rps},
    }
    return rec
