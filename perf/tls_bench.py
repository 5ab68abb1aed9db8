"""What TLS costs on the forwarded path: ModelInfer sent to instance B for a model held by
instance A (client -> B external port -> A internal port -> A's runtime), plaintext vs TLS with
client auth (external TLS + internal mutual TLS), same machine, same runtime.

    .venv/bin/python -m perf.tls_bench [--seconds 5] [--conc 1,8]

Prints req/s, p50 and p99 per mode and concurrency, and the fraction of replies that came from
A (1.0 = every request was forwarded).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import grpc  # noqa: E402

from harness.mesh import MeshProcess, TestRuntimeProcess  # noqa: E402
from harness.mesh_client import infer_request, model_info  # noqa: E402
from harness.pki import MESH_DNS_NAME, make_mesh_pki  # noqa: E402
from harness.services import EtcdServer  # noqa: E402
from modelmesh.protos import model_mesh_pb2 as pb  # noqa: E402
from modelmesh.protos.grpc_predict_v2_pb2 import ModelInferResponse  # noqa: E402
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub  # noqa: E402

METHOD = "/inference.GRPCInferenceService/ModelInfer"
NO_SCALE_UP = {"MM_SCALEUP_RPM_THRESHOLD": "1000000000", "MM_MAX_INFLIGHT_PER_MODEL_COPY": "100000"}


async def drive(channel: grpc.aio.Channel, model: str, seconds: float, conc: int) -> tuple[list[float], float]:
    call = channel.unary_unary(METHOD)
    payload, meta = infer_request().SerializeToString(), [("mm-model-id", model)]
    latencies: list[float] = []
    forwarded = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal forwarded
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            raw = await call(payload, metadata=meta, timeout=30)
            latencies.append(time.perf_counter() - t0)
            if ModelInferResponse.FromString(raw).parameters["runtime"].string_param == "a":
                forwarded += 1

    await asyncio.gather(*(worker() for _ in range(conc)))
    return latencies, forwarded / max(1, len(latencies))


async def run_mode(workdir: Path, etcd: EtcdServer, mode: str, env: dict[str, str], client_creds, args) -> None:
    runtimes = [TestRuntimeProcess(workdir, f"{name}", 100_000_000).start() for name in ("a", "b")]
    meshes = []
    try:
        for name, rt in zip(("a", "b"), runtimes):
            meshes.append(MeshProcess(workdir, f"{mode}-{name}", etcd.endpoint, rt.port, service_name=f"tls-{mode}",
                                      extra_env={**env, **NO_SCALE_UP, "LOG_LEVEL": "warning"}).start())
        opts = [("grpc.ssl_target_name_override", MESH_DNS_NAME)]

        def channel(target: str) -> grpc.aio.Channel:
            return (grpc.aio.secure_channel(target, client_creds, options=opts) if client_creds
                    else grpc.aio.insecure_channel(target))

        async with channel(meshes[0].target) as ch_a, channel(meshes[1].target) as ch_b:
            await ModelMeshStub(ch_a).registerModel(pb.RegisterModelRequest(modelId="bench", modelInfo=model_info()))
            await ch_a.unary_unary(METHOD)(infer_request().SerializeToString(),
                                           metadata=[("mm-model-id", "bench")], timeout=60)  # loaded on a
            await drive(ch_b, "bench", 1.0, 4)  # warm-up
            for conc in args.conc:
                lat, fwd = await drive(ch_b, "bench", args.seconds, conc)
                lat.sort()
                p50, p99 = statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000
                print(f"{mode:10s} conc={conc:<3d} {len(lat) / args.seconds:8.0f} req/s   p50 {p50:6.2f} ms"
                      f"   p99 {p99:6.2f} ms   forwarded {fwd:.2f}", flush=True)
    finally:
        for m in meshes:
            m.stop()
        for rt in runtimes:
            rt.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--conc", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pki = make_mesh_pki(work / "pki")
        etcd = EtcdServer(work / "etcd").start()
        try:
            await run_mode(work, etcd, "plaintext", {}, None, args)
            tls_env = {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(pki["mesh.key"]),
                       "MM_TLS_CLIENT_AUTH": "require", "MM_TLS_TRUST_CERT_PATH": str(pki["ca.crt"])}
            creds = grpc.ssl_channel_credentials(pki["ca.crt"].read_bytes(), pki["client.key"].read_bytes(),
                                                 pki["client.crt"].read_bytes())
            await run_mode(work, etcd, "mtls", tls_env, creds, args)
        finally:
            etcd.stop()


if __name__ == "__main__":
    asyncio.run(main())
