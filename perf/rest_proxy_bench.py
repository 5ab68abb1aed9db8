"""REST proxy benchmark: V2 REST infer through the proxy vs V2 gRPC straight to the runtime.

    .venv/bin/python -m perf.rest_proxy_bench                      # levels 1, 8, 32; 2 x 3 s each
    .venv/bin/python -m perf.rest_proxy_bench --seconds 2 --levels 1,8

Starts a real Triton (python-backend `doubler`, FP32) and the proxy as its own process
(`python -m modelmesh.cli runtime rest-proxy`, uvloop), then at each concurrency level runs
the same infer for a bounded time (and at most --max-requests), best of --rounds, over
  grpc direct     grpc.aio stub -> Triton's gRPC port
  rest workers=1  aiohttp client -> proxy (one process) -> the same gRPC port
  rest workers=N  the same through a second proxy with REST_PROXY_WORKERS=N (--workers)
and prints req/s, p50 and p99 latency and the ratio rest/grpc. Payloads: `small` (4 floats)
and `large` (16,384 floats; JSON ~150 KB; also sent with the binary tensor extension both
ways, `rest binary ext`, which skips JSON numbers). The load generator's own ceiling: the REST
client against a null HTTP server (canned reply, no work) in a separate process; the REST
figures mean something only well below it. (The gRPC client's ceiling is at least its
`grpc direct` figure; a Python null gRPC server would measure itself, not the client.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import aiohttp  # noqa: E402
import grpc  # noqa: E402
import orjson  # noqa: E402

from modelmesh.protos import grpc_predict_v2_pb2 as pb  # noqa: E402
from perf.mesh_bench import cpu_seconds  # noqa: E402
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub  # noqa: E402

Call = Callable[[], Awaitable[bool]]


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu_s: float | None = None  # CPU of the proxy's processes (all workers) during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive(call: Call, concurrency: int, seconds: float, max_requests: int) -> Result:
    """Closed loop: `concurrency` workers each send the next request when the last returns."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    deadline = loop.time() + seconds

    async def worker() -> None:
        nonlocal errors
        while loop.time() < deadline and len(latencies) + errors < max_requests:
            t0 = time.perf_counter()
            ok = await call()
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(len(latencies), errors, time.perf_counter() - start, latencies)


def grpc_call(stub: GRPCInferenceServiceStub, request: pb.ModelInferRequest) -> Call:
    async def call() -> bool:
        try:
            await stub.ModelInfer(request)
            return True
        except grpc.aio.AioRpcError:
            return False

    return call


def rest_call(session: aiohttp.ClientSession, url: str, body: bytes, json_length: int | None = None) -> Call:
    headers = {"Content-Type": "application/json"}
    if json_length is not None:  # binary tensor extension
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(json_length)}

    async def call() -> bool:
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            return r.status == 200

    return call


def binary_payload(request: pb.ModelInferRequest) -> tuple[bytes, int]:
    """The same infer as REST with the binary tensor extension both ways (no JSON numbers)."""
    raw = request.raw_input_contents[0]
    header = orjson.dumps({"parameters": {"binary_data_output": True}, "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": list(request.inputs[0].shape),
         "parameters": {"binary_data_size": len(raw)}}]})
    return header + raw, len(header)


def payload(n: int) -> tuple[pb.ModelInferRequest, bytes]:
    values = [float(i % 97) * 0.5 for i in range(n)]
    request = pb.ModelInferRequest(model_name="doubler")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[n])
    request.raw_input_contents.append(struct.pack(f"<{n}f", *values))
    body = orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [n], "data": values}]})
    return request, body


# --- null server: the load generator's ceiling ----------------------------------------------

async def _serve_null(http_port: int) -> None:
    from aiohttp import web

    reply_json = orjson.dumps({"model_name": "doubler", "model_version": "1", "outputs": [
        {"name": "OUTPUT0", "datatype": "FP32", "shape": [4], "data": [0.0, 1.0, 2.0, 3.0]}]})

    async def infer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply_json, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v2/models/{name}/infer", infer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    await asyncio.Event().wait()


# --- orchestration ------------------------------------------------------------------------------

def _start_triton(workdir: Path):
    from harness.models import triton_python_doubler
    from harness.services import Triton

    triton = Triton(workdir / "triton")
    triton.start()
    triton_python_doubler(triton.repo, "doubler")
    with grpc.insecure_channel(f"127.0.0.1:{triton.grpc_port}") as channel:
        GRPCInferenceServiceStub(channel).RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(model_name="doubler"), timeout=120)
    return triton


def _start_proxy(workdir: Path, grpc_port: int, workers: int = 1):
    from harness.process import ManagedProcess, free_port, port_open

    port = free_port()
    env = {**os.environ, "REST_PROXY_LISTEN_HOST": "127.0.0.1", "REST_PROXY_LISTEN_PORT": str(port),
           "REST_PROXY_GRPC_PORT": str(grpc_port), "LOG_LEVEL": "warning", "REST_PROXY_WORKERS": str(workers)}
    proc = ManagedProcess(f"rest-proxy-{workers}", [sys.executable, "-m", "modelmesh.cli", "runtime", "rest-proxy"],
                          workdir / f"proxy-{workers}.log", env=env)
    proc.start(lambda: port_open(port), timeout=30)
    return proc, port


def _start_null(workdir: Path):
    from harness.process import ManagedProcess, free_port, port_open

    http_port = free_port()
    proc = ManagedProcess("null-server", [sys.executable, "-m", "perf.rest_proxy_bench", "--null-server",
                                          str(http_port)], workdir / "null.log", cwd=ROOT)
    proc.start(lambda: port_open(http_port), timeout=30)
    return proc, http_port


def _row(label: str, size: str, level: int, r: Result, extra: str = "") -> None:
    err = f"  errors={r.errors}" if r.errors else ""
    print(f"{size:<6} {level:>5}  {label:<18} {r.rps:>9.0f} {r.pct(0.50):>8.2f} {r.pct(0.99):>8.2f}{extra}{err}",
          flush=True)


def _record(rows: list[dict], label: str, size: str, level: int, r: Result) -> None:
    cpu = r.server_cpu_s * 1e3 / r.requests if r.server_cpu_s is not None and r.requests else None
    rows.append({"size": size, "conc": level, "path": label, "rps": r.rps, "p50_ms": r.pct(0.5),
                 "p99_ms": r.pct(0.99), "errors": r.errors, "proxy_cpu_ms_per_req": cpu})


async def bench(args: argparse.Namespace, workdir: Path) -> dict:
    """Measures and prints; returns {"rows": [...], "ceiling": [...], "workers": [1, N]}."""
    levels = [int(x) for x in args.levels.split(",")]
    worker_counts = sorted({1, max(1, args.workers)})
    triton = _start_triton(workdir)
    proxies = [_start_proxy(workdir, triton.grpc_port, w) for w in worker_counts]
    null, null_http = _start_null(workdir)
    connector = aiohttp.TCPConnector(limit=0)
    out: dict = {"rows": [], "ceiling": [], "workers": worker_counts}
    try:
        async with aiohttp.ClientSession(connector=connector) as session, \
                grpc.aio.insecure_channel(f"127.0.0.1:{triton.grpc_port}") as channel:
            stub = GRPCInferenceServiceStub(channel)
            urls = {w: f"http://127.0.0.1:{port}/v2/models/doubler/infer" for w, (_, port) in zip(worker_counts, proxies)}
            print(f"{'size':<6} {'conc':>5}  {'path':<18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
            sizes = [("small", 4, levels)] + ([("large", 16384, [8])] if args.large else [])
            for size, n, size_levels in sizes:
                request, body = payload(n)
                calls = {"grpc direct": grpc_call(stub, request)}
                pids = {}
                for (w, url), (proc, _) in zip(urls.items(), proxies):
                    calls[f"rest workers={w}"] = rest_call(session, url, body)
                    pids[f"rest workers={w}"] = proc.pid
                if size == "large":
                    calls["rest binary ext"] = rest_call(session, urls[1], *binary_payload(request))
                    pids["rest binary ext"] = proxies[0][0].pid
                for call in calls.values():  # warm up connections and the model
                    await drive(call, 4, min(2, args.seconds), 100)
                for level in size_levels:
                    res: dict[str, Result] = {}
                    for _ in range(args.rounds):  # alternate paths; keep each one's best round
                        for name, call in calls.items():
                            pid = pids.get(name)
                            c0 = cpu_seconds(pid) if pid else 0.0
                            r = await drive(call, level, args.seconds, args.max_requests)
                            if pid:
                                r.server_cpu_s = cpu_seconds(pid) - c0
                            if name not in res or r.rps > res[name].rps:
                                res[name] = r
                    _row("grpc direct", size, level, res["grpc direct"])
                    _record(out["rows"], "grpc direct", size, level, res["grpc direct"])
                    for name in list(calls)[1:]:
                        ratio = res[name].rps / res["grpc direct"].rps if res["grpc direct"].rps else 0
                        cpu = res[name].server_cpu_s
                        cpu_text = f", proxy CPU {cpu * 1e3 / res[name].requests:.2f} ms/req" \
                            if cpu is not None and res[name].requests else ""
                        _row(name, size, level, res[name], f"   rest/grpc = {ratio:.2f}{cpu_text}")
                        _record(out["rows"], name, size, level, res[name])
            print("\nload generator ceiling (REST client -> null HTTP server: canned reply, no work):")
            _, body = payload(4)
            null_call = rest_call(session, f"http://127.0.0.1:{null_http}/v2/models/doubler/infer", body)
            await drive(null_call, 4, 1, 100)
            for level in levels:
                rounds = [await drive(null_call, level, args.seconds, args.max_requests) for _ in range(args.rounds)]
                best = max(rounds, key=lambda r: r.rps)
                _row("rest client", "small", level, best)
                _record(out["ceiling"], "rest client", "small", level, best)
    finally:
        null.stop()
        for proc, _ in proxies:
            proc.stop()
        triton.stop()
    return out


def default_workers() -> int:
    return max(2, os.cpu_count() or 1)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", default="1,8,32", help="concurrency levels (comma-separated)")
    p.add_argument("--seconds", type=float, default=3.0, help="measurement time per path, level, round")
    p.add_argument("--max-requests", type=int, default=200_000, help="cap per path, level and round")
    p.add_argument("--rounds", type=int, default=2, help="rounds per measurement; the best is shown")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="REST_PROXY_WORKERS of the second proxy (the first has 1); default: cores, at least 2")
    p.add_argument("--no-large", dest="large", action="store_false", help="skip the 16,384-float payload")
    p.add_argument("--null-server", type=int, metavar="HTTP_PORT", help=argparse.SUPPRESS)
    return p


def run_bench(args: argparse.Namespace) -> dict:
    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    print(f"rest proxy bench: {os.cpu_count()} CPUs, best of {args.rounds} x {args.seconds:g} s per measurement, "
          f"python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rest-proxy-bench-") as tmp:
        return run(bench(args, Path(tmp)))


def main() -> None:
    args = parser().parse_args()
    if args.null_server:
        try:
            import uvloop
            uvloop.run(_serve_null(args.null_server))
        except ImportError:
            asyncio.run(_serve_null(args.null_server))
        return
    run_bench(args)


if __name__ == "__main__":
    main()
