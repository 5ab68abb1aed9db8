"""Inference latency through the front door of `modelmesh local` (one sklearn iris model on
MLServer), sequential requests: what a user sees from one client.

    .venv/bin/python -m perf.local_latency [--requests 500] [--instances 1]

Starts `modelmesh local` as a real process on free ports with temp config and state dirs,
waits until ready and the model is loaded, warms up, then sends --requests gRPC ModelInfer
calls (mm-vmodel-id header) and --requests REST /infer calls one after the other. Prints
p50 / p90 / p99 in ms for each. Bounded by --requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import grpc  # noqa: E402

from harness import tools  # noqa: E402
from harness.local_mode import LocalMode, iris_rest_body, isvc_yaml  # noqa: E402
from harness.models import IRIS_SAMPLES, sklearn_iris  # noqa: E402
from modelmesh.protos import grpc_predict_v2_pb2 as v2  # noqa: E402
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub  # noqa: E402


def figures(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return (f"{name}: n={len(samples)} p50 {statistics.median(samples) * 1000:.2f} ms  "
            f"p90 {q[89] * 1000:.2f} ms  p99 {q[98] * 1000:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--instances", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = sklearn_iris(tmp / "src" / "iris", tools.mlserver_venv() / "bin" / "python", "iris")
        config = tmp / "config"
        config.mkdir()
        (config / "iris.yaml").write_text(isvc_yaml("iris", f"file://{model}"))
        mode = LocalMode(tmp, config, tmp / "state", extra_args=["--instances", str(args.instances)])
        mode.start()
        try:
            mode.wait_model("iris")
            rows = [x for x, _ in IRIS_SAMPLES]
            req = v2.ModelInferRequest(model_name="iris")
            t = req.inputs.add(name="predict", datatype="FP64", shape=[len(rows), 4])
            t.contents.fp64_contents.extend(v for row in rows for v in row)
            body = json.dumps(iris_rest_body()).encode()
            with grpc.insecure_channel(f"127.0.0.1:{mode.grpc_port}") as ch:
                stub = GRPCInferenceServiceStub(ch)
                for _ in range(50):  # warm-up: channels, first-use paths
                    stub.ModelInfer(req, metadata=[("mm-vmodel-id", "iris")], timeout=30)
                grpc_s = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    stub.ModelInfer(req, metadata=[("mm-vmodel-id", "iris")], timeout=30)
                    grpc_s.append(time.perf_counter() - t0)
            rest_s = []
            url = f"{mode.rest}/v2/models/iris/infer"
            for i in range(args.requests + 50):
                t0 = time.perf_counter()
                r = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(r, timeout=30) as resp:
                    resp.read()
                if i >= 50:
                    rest_s.append(time.perf_counter() - t0)
            print(figures("gRPC ModelInfer via the front door", grpc_s))
            print(figures("REST /infer via the front door    ", rest_s))
        finally:
            mode.stop()


if __name__ == "__main__":
    main()
