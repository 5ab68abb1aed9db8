"""Mesh routing overhead: ModelInfer through a mesh instance vs directly to the same runtime.

Starts etcd, one runtime (harness.test_runtime: the SPI + a real protobuf V2 ModelInfer),
a `modelmesh runtime` instance in front of it, and - as the floor - a bare grpc.aio raw-bytes
forwarder (the same as shared/tools/grpc-hop-floor) in front of the same runtime. A separate
client process drives each path at several concurrencies and prints req/s, p50/p99 and the
server-side CPU per request, then cache-miss latency (register + first request) vs the
runtime's own load time.

    .venv/bin/python -m perf.mesh_bench [--seconds 5] [--conc 1,8,32] [--pin]

--pin puts the mesh (and the floor forwarder) on core 1 and everything else on core 0, the
"mesh has a core of its own" set-up of mesh.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.mesh import MeshProcess, TestRuntimeProcess  # noqa: E402
from harness.process import ManagedProcess, free_port, port_open  # noqa: E402
from harness.services import EtcdServer  # noqa: E402

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def infer_bytes(model: str, payload: int) -> bytes:
    from modelmesh.protos import grpc_predict_v2_pb2 as v2

    n = max(1, payload // 4)
    req = v2.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype="FP32", shape=[n])
    req.raw_input_contents.append(struct.pack(f"<{n}f", *([1.5] * n)))
    return req.SerializeToString()


def _drive(target: str, conc: int, seconds: float, body: bytes, metadata: tuple, out) -> None:
    import grpc

    async def main():
        channel = grpc.aio.insecure_channel(target)
        call = channel.unary_unary(METHOD)
        for _ in range(50):
            await call(body, metadata=metadata, timeout=30)
        lat: list[float] = []
        stop = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < stop:
                t = time.perf_counter()
                await call(body, metadata=metadata, timeout=30)
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - t0
        lat.sort()
        out.put((len(lat), len(lat) / elapsed, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3))

    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def drive(target, conc, seconds, body, metadata, cpu_list=None):
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_drive, args=(target, conc, seconds, body, metadata, q))
    p.start()
    if cpu_list is not None:
        os.sched_setaffinity(p.pid, cpu_list)
    result = q.get(timeout=seconds + 120)
    p.join(30)
    return result


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for child in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{child}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


FORWARDER = r'''
import asyncio, sys, grpc
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
port, target = int(sys.argv[1]), sys.argv[2]
async def main():
    channel = grpc.aio.insecure_channel(target)
    calls = {}
    class H(grpc.GenericRpcHandler):
        def service(self, d):
            call = calls.get(d.method) or calls.setdefault(d.method, channel.unary_unary(d.method))
            async def handle(req, ctx):
                return await call(req, metadata=(("mm-model-id", "m"),))
            return grpc.unary_unary_rpc_method_handler(handle)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((H(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()
asyncio.run(main())
'''


async def register_and_load(target: str, model_id: str) -> float:
    import grpc

    from harness.mesh_client import model_info
    from modelmesh.protos import model_mesh_pb2 as pb
    from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub

    async with grpc.aio.insecure_channel(target) as ch:
        await ModelMeshStub(ch).registerModel(pb.RegisterModelRequest(modelId=model_id, modelInfo=model_info()))
        t = time.perf_counter()
        await ch.unary_unary(METHOD)(infer_bytes(model_id, 200), metadata=(("mm-model-id", model_id),), timeout=30)
        return (time.perf_counter() - t) * 1e3


async def direct_load(runtime_port: int, model_id: str) -> float:
    import grpc

    from modelmesh.protos import model_runtime_pb2 as rt
    from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub

    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime_port}") as ch:
        t = time.perf_counter()
        await ModelRuntimeStub(ch).loadModel(rt.LoadModelRequest(modelId=model_id, modelType="test", modelKey="{}"))
        await ch.unary_unary(METHOD)(infer_bytes(model_id, 200), timeout=30)
        return (time.perf_counter() - t) * 1e3


async def registration_rates(etcd_endpoint: str, mesh_target: str, n: int, conc: int) -> tuple[float, float]:
    """Raw etcd puts/s (aetcd) and mesh registerModel/s, same count and concurrency."""
    import aetcd
    import grpc

    from harness.mesh_client import model_info
    from modelmesh.protos import model_mesh_pb2 as pb
    from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub

    host, port = etcd_endpoint.rsplit("//", 1)[1].split(":")
    sem = asyncio.Semaphore(conc)
    async with aetcd.Client(host=host, port=int(port)) as client:
        async def put(i):
            async with sem:
                await client.put(f"/bench/raw/{i}".encode(), b'{"type":"test","mPath":"/models/x"}')
        t = time.perf_counter()
        await asyncio.gather(*(put(i) for i in range(n)))
        raw = n / (time.perf_counter() - t)
    async with grpc.aio.insecure_channel(mesh_target) as ch:
        stub = ModelMeshStub(ch)
        info = model_info()

        async def register(i):
            async with sem:
                await stub.registerModel(pb.RegisterModelRequest(modelId=f"reg-{i}", modelInfo=info))
        t = time.perf_counter()
        await asyncio.gather(*(register(i) for i in range(n)))
        mesh = n / (time.perf_counter() - t)
    return raw, mesh


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--conc", default="1,8,32")
    ap.add_argument("--payload", type=int, default=200)
    ap.add_argument("--misses", type=int, default=30)
    ap.add_argument("--registrations", type=int, default=2000)
    ap.add_argument("--pin", action="store_true", help="mesh/forwarder on core 1, the rest on core 0")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the hop table; the summary gives the median mesh/floor CPU ratio per concurrency "
                         "(on a shared machine single cells swing widely)")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    ncpu = os.cpu_count() or 1
    pin = args.pin and ncpu >= 2
    other_cores, mesh_cores = ({0}, {1}) if pin else (None, None)
    work = Path(tempfile.mkdtemp(prefix="mesh-bench-"))
    etcd = EtcdServer(work / "etcd").start()
    runtime = TestRuntimeProcess(work, "bench", capacity=10**12).start()
    mesh = MeshProcess(work, "bench", etcd.endpoint, runtime.port,
                       extra_env={"LOG_LEVEL": "warning", "MM_METRICS": "none"})
    mesh.start()
    fwd_port = free_port()
    fwd = ManagedProcess("forwarder", [sys.executable, "-c", FORWARDER, str(fwd_port), f"127.0.0.1:{runtime.port}"],
                         work / "fwd.log")
    fwd.start(lambda: port_open(fwd_port), timeout=20)
    if pin:
        for pid in (mesh.proc.pid, fwd.pid):
            os.sched_setaffinity(pid, mesh_cores)
        for pid in (runtime.proc.pid, etcd.proc.pid):
            os.sched_setaffinity(pid, other_cores)
    results: dict = {"machine": f"{platform.machine()} {ncpu} cores", "pinned": pin, "rows": []}
    try:
        asyncio.run(register_and_load(mesh.target, "hit-model"))
        body = infer_bytes("hit-model", args.payload)
        direct_body = body
        # The runtime answers only for a loaded model name; direct and floor use the same one.
        print(f"workload: ModelInfer, {args.payload} B FP32 input, one loaded model; {results['machine']}; "
              f"pinned={pin}; each cell {args.seconds:.0f}s")
        print(f"{'path':8} {'conc':>4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'hop cpu ms/req':>14} {'vs direct':>9}")
        ratios: dict[int, list[float]] = {}
        for conc in [int(c) for c in args.conc.split(",")] * max(1, args.rounds):
            row = {"conc": conc}
            for name, target, md, pid in (
                ("direct", f"127.0.0.1:{runtime.port}", (), None),
                ("floor", f"127.0.0.1:{fwd_port}", (), fwd.pid),
                ("mesh", mesh.target, (("mm-model-id", "hit-model"),), mesh.proc.pid),
            ):
                c0 = cpu_seconds(pid) if pid else 0
                n, rps, p50, p99 = drive(target, conc, args.seconds, direct_body if name != "mesh" else body, md,
                                         other_cores)
                cpu = (cpu_seconds(pid) - c0) * 1e3 / n if pid else None
                row[name] = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "cpu_ms_per_req": cpu}
                ratio = rps / row["direct"]["rps"]
                cpu_text = f"{cpu:14.3f}" if cpu is not None else f"{'-':>14}"
                print(f"{name:8} {conc:>4} {rps:8.0f} {p50:7.2f} {p99:7.2f} {cpu_text} {ratio:9.2f}")
            m, f, d = row["mesh"], row["floor"], row["direct"]
            print(f"{'':8} {conc:>4} mesh: +{m['p50_ms'] - d['p50_ms']:.2f} ms p50 over direct, "
                  f"{m['rps'] / d['rps']:.0%} of direct req/s, CPU {m['cpu_ms_per_req'] / f['cpu_ms_per_req']:.2f}x floor")
            results["rows"].append(row)
            ratios.setdefault(conc, []).append(m["cpu_ms_per_req"] / f["cpu_ms_per_req"])
        if args.rounds > 1:
            medians = {c: sorted(r)[len(r) // 2] for c, r in ratios.items()}
            results["cpu_vs_floor_median"] = medians
            print("mesh CPU per request vs floor, median of " + str(args.rounds) + " rounds: "
                  + ", ".join(f"conc {c}: {v:.2f}x" for c, v in medians.items()))
        # Cache misses: register + first request (load through the SPI) vs the runtime's own load.
        miss = sorted(asyncio.run(register_and_load(mesh.target, f"miss-{i}")) for i in range(args.misses))
        own = sorted(asyncio.run(direct_load(runtime.port, f"own-{i}")) for i in range(args.misses))
        results["miss"] = {"mesh_p50_ms": miss[len(miss) // 2], "runtime_load_p50_ms": own[len(own) // 2]}
        print(f"cache miss (load + first inference), {args.misses} models: mesh p50 {miss[len(miss) // 2]:.2f} ms, "
              f"runtime load+infer directly p50 {own[len(own) // 2]:.2f} ms")
        raw, reg = asyncio.run(registration_rates(etcd.endpoint, mesh.target, args.registrations, 32))
        results["registrations"] = {"raw_etcd_puts_per_s": raw, "register_model_per_s": reg}
        print(f"registrations, {args.registrations} at concurrency 32: raw etcd put {raw:.0f}/s, "
              f"registerModel {reg:.0f}/s ({reg / raw:.0%} of raw)")
    finally:
        fwd.stop()
        mesh.stop()
        runtime.stop()
        etcd.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
