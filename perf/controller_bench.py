"""Controller throughput: N Predictors created at once, time until every one is Loaded.

    .venv/bin/python -m perf.controller_bench [--predictors 200] [--concurrency 16]

Starts the real kube-apiserver 1.20 (+ etcd) on 127.0.0.1, installs deploy/crds, runs the
controller in-process against a stand-in mesh that answers every load as done (so the
figures are the controller + API server cost, not model loading). Prints create->Loaded
latency percentiles, total wall time, and how many setVModel calls each Predictor cost.
Bounded by --predictors and a 300 s deadline.
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
sys.path.insert(0, str(ROOT / "tests" / "controller"))

import grpc  # noqa: E402
import yaml  # noqa: E402
from harness.services import KubeApiServer  # noqa: E402
from kubernetes_asyncio import config as k8s_config  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from standin_mesh import StandInMesh  # noqa: E402

from modelmesh.config.controller import ControllerSettings  # noqa: E402
from modelmesh.config.settings import load_settings  # noqa: E402
from modelmesh.controller.kube import CRD, NAMESPACE, PREDICTOR, KubeApi  # noqa: E402
from modelmesh.controller.manager import Controller  # noqa: E402
from modelmesh.protos import model_mesh_pb2_grpc as mm_grpc  # noqa: E402

NS = "bench"


async def run(n: int, concurrency: int) -> None:
    kube = KubeApiServer(Path(tempfile.mkdtemp(prefix="ctl-bench-")))
    kube.start()
    mesh = StandInMesh()
    mesh.auto_complete = True
    server = grpc.aio.server()
    mm_grpc.add_ModelMeshServicer_to_server(mesh, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = await k8s_config.new_client_from_config(config_file=str(kube.kubeconfig))
    api = KubeApi(client, field_manager="bench")
    controller = None
    try:
        for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
            await api.create(CRD, yaml.safe_load(path.read_text()))
        await api.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        await asyncio.sleep(2)  # CRDs become served shortly after creation (bench set-up only)
        await api.apply({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "model-serving-config", "namespace": NS},
                         "data": {"config.yaml": f"modelMeshEndpoint: 127.0.0.1:{port}\n"}})
        rt = yaml.safe_load((ROOT / "tests" / "controller" / "runtimes" / "mlserver-1.x.yaml").read_text())
        rt["kind"], rt["metadata"]["namespace"] = "ServingRuntime", NS
        await api.apply(rt)
        settings = load_settings(ControllerSettings, {"NAMESPACE": NS, "NAMESPACE_SCOPE": "true",
                                                      "LEADER_ELECT": "false"})
        controller = Controller(KubeApi(client), settings, CollectorRegistry())
        await controller.start()

        created: dict[str, float] = {}
        loaded: dict[str, float] = {}
        sem = asyncio.Semaphore(concurrency)
        start = time.perf_counter()

        async def create(i: int) -> None:
            name = f"bench-{i:05d}"
            async with sem:
                created[name] = time.perf_counter()
                await api.create(PREDICTOR, {
                    "apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"modelType": {"name": "sklearn"}, "storage": {"path": f"models/{i}"}}}, NS)

        async def watch_loaded() -> None:
            _, rv = await api.list(PREDICTOR, NS)
            while len(loaded) < n:
                async for _, obj in api.watch(PREDICTOR, rv, NS, 60):
                    rv = obj["metadata"].get("resourceVersion", rv)
                    name = obj["metadata"]["name"]
                    if (obj.get("status") or {}).get("activeModelState") == "Loaded" and name not in loaded:
                        loaded[name] = time.perf_counter()
                    if len(loaded) >= n:
                        return

        watcher = asyncio.create_task(watch_loaded())
        await asyncio.gather(*(create(i) for i in range(n)))
        created_all = time.perf_counter() - start
        await asyncio.wait_for(watcher, 300)
        total = time.perf_counter() - start
        lat = sorted((loaded[k] - created[k]) * 1000 for k in loaded)
        q = statistics.quantiles(lat, n=100)
        calls = len(mesh.set_calls())
        print(f"predictors={n} concurrency={concurrency}")
        print(f"  created all in {created_all:.2f}s; all Loaded after {total:.2f}s "
              f"({n / total:.1f} predictors/s end to end)")
        print(f"  create->Loaded ms: p50 {q[49]:.0f}  p95 {q[94]:.0f}  max {lat[-1]:.0f}")
        print(f"  setVModel calls: {calls} ({calls / n:.2f} per predictor)")
    finally:
        if controller is not None:
            await controller.stop()
        await client.close()
        await server.stop(0)
        kube.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictors", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    asyncio.run(run(max(2, min(args.predictors, 5000)), args.concurrency))


if __name__ == "__main__":
    main()
