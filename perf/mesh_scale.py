"""How a mesh instance grows with registered models: RSS, registration rate and hit latency
at 1k / 10k / 50k registered models (one instance, one runtime, etcd).

    .venv/bin/python -m perf.mesh_scale
"""

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

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

async def main():
    work = Path(tempfile.mkdtemp())
    etcd = EtcdServer(work / "etcd").start()
    rt = TestRuntimeProcess(work, "s", capacity=10**12).start()
    mesh = MeshProcess(work, "s", etcd.endpoint, rt.port, extra_env={"LOG_LEVEL": "warning", "MM_METRICS": "none"}).start()
    c = Client(mesh.target)
    total = 0
    print(f"registered      0: mesh RSS {rss_mb(mesh.proc.pid):.0f} MB")
    for target in (1000, 10000, 50000):
        ids = [f"m-{i:06d}" for i in range(total, target)]
        t = time.perf_counter()
        await register_many(c, ids)
        el = time.perf_counter() - t
        total = target
        # latency of a hit and of a status read with this many models
        await c.infer("m-000000")
        lat = []
        for _ in range(200):
            t0 = time.perf_counter(); await c.infer("m-000000"); lat.append(time.perf_counter() - t0)
        lat.sort()
        print(f"registered {total:6d}: mesh RSS {rss_mb(mesh.proc.pid):.0f} MB, {len(ids)/el:.0f} reg/s, hit p50 {lat[100]*1e3:.2f} ms p99 {lat[197]*1e3:.2f} ms")
    await c.close()
    mesh.stop(); rt.stop(); etcd.stop()

if __name__ == "__main__":
    asyncio.run(main())
