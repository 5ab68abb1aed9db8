"""gpu-triton: Triton serving models on the GPU through the mesh (device machine only).

Triton (python backend) runs models that hold torch weights on CUDA; the built-in adapter
reports a GPU memory budget as its capacity (CONTAINER_MEM_REQ_BYTES), each model declares its
measured GPU footprint as its size, so the mesh's LRU cache is GPU memory. Many models, Zipf
traffic through the mesh (the density scenario's machinery, same figures and plot), then one
hot model through the mesh vs straight to Triton at a few concurrencies.

Needs: an NVIDIA GPU (nvidia-smi), Triton 2.51 (`make deps`, or TRITON_BIN/TRITON_BACKENDS/
TRITON_LD_LIBRARY_PATH/TRITON_PATH in a file named by MODELMESH_TRITON_ENV), and torch with
CUDA importable by the Python the python backend runs. Without a GPU the scenario says so and
writes {"scenario": "gpu-triton", "skipped": why}. On the device machine: perf/gpu/run-on-device.sh.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import textwrap
from pathlib import Path

from perf.suite import density
from perf.suite.record import Record, skipped

NAME = "gpu-triton"
DIM = 1024  # input/output width of the models
GiB = 1024**3


def gpu() -> tuple[str, int] | str:
    """(name, total memory bytes) of GPU 0, or why there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no GPU on this machine (nvidia-smi not found)"
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"no usable GPU (nvidia-smi failed: {e})"
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        return f"no usable GPU (nvidia-smi: {(out.stderr or out.stdout).strip()[:200] or 'lists none'})"
    name, mem_mib = (x.strip() for x in lines[0].rsplit(",", 1))
    return name, int(float(mem_mib)) * 1024 * 1024


def gpu_used_bytes() -> int:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30, check=False)
    return int(float(out.stdout.splitlines()[0])) * 1024 * 1024


MODEL_PY = textwrap.dedent('''
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        """A {layers}-layer MLP of width {dim} held on {device}: OUTPUT0 = mlp(INPUT0)."""

        def initialize(self, args):
            if "{device}" == "cuda":
                import torch

                torch.manual_seed(0)
                self.torch = torch
                self.layers = [torch.randn({dim}, {dim}, device="cuda") / {dim} ** 0.5 for _ in range({layers})]
            else:  # the CPU rehearsal: numpy, no torch needed
                self.torch = None
                rng = np.random.default_rng(0)
                self.layers = [rng.standard_normal(({dim}, {dim}), dtype=np.float32) / {dim} ** 0.5
                               for _ in range({layers})]

        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                if self.torch is not None:
                    x = self.torch.from_numpy(x).to("cuda")
                    for w in self.layers:
                        x = self.torch.relu(x @ w)
                    x = x.cpu().numpy()
                else:
                    for w in self.layers:
                        x = np.maximum(x @ w, 0)
                out = pb_utils.Tensor("OUTPUT0", x.astype(np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            return responses
''')

CONFIG = textwrap.dedent('''
    backend: "python"
    max_batch_size: 0
    input [{{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1, {dim} ] }}]
    output [{{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1, {dim} ] }}]
    instance_group [{{ kind: {kind} count: 1 }}]
''')


def make_model(dest: Path, layers: int, device: str) -> Path:
    (dest / "1").mkdir(parents=True, exist_ok=True)
    (dest / "1" / "model.py").write_text(MODEL_PY.format(dim=DIM, layers=layers, device=device))
    (dest / "config.pbtxt").write_text(CONFIG.format(dim=DIM, kind="KIND_GPU" if device == "cuda" else "KIND_CPU"))
    return dest


def infer_request(name: str):
    from modelmesh.protos import grpc_predict_v2_pb2 as v2

    req = v2.ModelInferRequest(model_name=name)
    req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, DIM])
    req.raw_input_contents.append(struct.pack(f"<{DIM}f", *([0.5] * DIM)))
    return req


def triton_kind(layers: int, device: str) -> density.ModelKind:
    def make_source(work: Path) -> Path:
        return make_model(work / "source" / "mlp", layers, device)

    def floor_copy(server, source: Path, name: str) -> Path:
        shutil.copytree(source, server.repo / name)
        return server.repo / name

    return density.ModelKind("triton", "python", make_source, floor_copy, infer_request)


def measure_footprint(kind: density.ModelKind, work: Path) -> int:
    """GPU memory one loaded model takes (its stub process's CUDA context included)."""
    import grpc
    from harness.services import Triton

    from modelmesh.protos import grpc_predict_v2_pb2 as v2
    from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    triton = Triton(work / "footprint").start()
    try:
        source = kind.make_source(work / "footprint-src")
        before = gpu_used_bytes()
        with grpc.insecure_channel(f"127.0.0.1:{triton.grpc_port}") as ch:
            stub = GRPCInferenceServiceStub(ch)
            for i in range(2):
                kind.floor_copy(triton, source, f"fp-{i}")
                stub.RepositoryModelLoad(v2.RepositoryModelLoadRequest(model_name=f"fp-{i}"), timeout=300)
                stub.ModelInfer(infer_request(f"fp-{i}"), timeout=120)
        return max(1, (gpu_used_bytes() - before) // 2)
    finally:
        triton.stop()


CPU_REHEARSAL_ENV = "PERF_GPU_TRITON_ON_CPU"


def run(quick: bool, skew: float = 1.0, **_) -> Record | dict:
    """With PERF_GPU_TRITON_ON_CPU=1 and no GPU: the same scenario with numpy models on the CPU
    and a declared size, to rehearse the wiring before spending device time (says so in the record)."""
    from perf import mesh_bench

    found = gpu()
    rehearsal = isinstance(found, str) and os.environ.get(CPU_REHEARSAL_ENV) == "1"
    if isinstance(found, str) and not rehearsal:
        return skipped(NAME, found)
    device = "cpu" if rehearsal else "cuda"
    layers = 4 if quick else 16  # 4 MiB per layer of width 1024 (FP32)
    kind = triton_kind(layers, device)
    if not rehearsal:  # a device machine has cores for parallel loads
        kind.adapter_env["LOADING_CONCURRENCY"] = str(max(2, min(8, (os.cpu_count() or 2) // 2)))
    work = Path(tempfile.mkdtemp(prefix="perf-gpu-"))
    if rehearsal:
        gpu_name, gpu_total, footprint = "none (CPU rehearsal)", 0, layers * 4 * 2**20
    else:
        gpu_name, gpu_total = found
        try:
            footprint = measure_footprint(kind, work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    # Quick: a budget with room for 8 models so that the cache turns over in minutes. Full: 40%
    # of the GPU, at most 32 models (each python-backend model is a stub process with its own
    # CUDA context and ~1 GB of host memory).
    room_total = 8 if quick or rehearsal else max(8, min(32, int(gpu_total * 0.4 // footprint)))
    # Quick: 5x more models than room and 150 requests (python-backend loads take seconds each,
    # and a device lease is 15 minutes); full: 10x, 5 requests per model.
    models = room_total * (5 if quick else 10)
    w = density.Workload(models=models, instances=1, room_fraction=room_total / models,
                         requests=150 if quick else 5 * models, concurrency=4 if quick else 8,
                         skew=skew, floor_loads=3 if quick else 10, model_size_bytes=footprint, poll_s=2.0)

    def mesh_vs_direct(pods, rec: Record) -> None:
        """One model, loaded by the mesh's warm-up calls: through the mesh vs straight to Triton."""
        if not rehearsal:
            rec.figure("gpu_used_gb_at_end_of_traffic", gpu_used_bytes() / GiB)
        pod, mid = pods[0], "d-00000"
        body = infer_request(mid).SerializeToString()
        for conc in ((1, 8) if quick else (1, 4, 16)):
            m = mesh_bench.drive(pod.mesh.target, conc, 3, body, (("mm-model-id", mid),))
            d = mesh_bench.drive(f"127.0.0.1:{pod.server.grpc_port}", conc, 3, body, ())
            rec.compare(f"mesh_rps_c{conc}", m[1], f"direct_rps_c{conc}", d[1])
            rec.compare(f"mesh_p50_ms_c{conc}", m[2], f"direct_p50_ms_c{conc}", d[2])

    try:
        rec = density.measure(w, kind, name=NAME, work=work, before_stop=mesh_vs_direct)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rec.workload.update({"device": device, "gpu": gpu_name, "gpu_memory_gb": round(gpu_total / GiB, 1),
                         "model": f"python backend, MLP {layers}x{DIM}x{DIM} FP32 on {device}"
                                  + (" (torch)" if device == "cuda" else " (numpy)"),
                         "model_size_mb": round(footprint / 2**20, 1),
                         "cache_budget_gb": round(room_total * footprint / GiB, 2)})
    if rehearsal:
        rec.notes.append("CPU REHEARSAL (PERF_GPU_TRITON_ON_CPU=1): no GPU; numpy models, declared sizes")
    else:
        rec.notes.append("capacity = GPU budget reported by the adapter (CONTAINER_MEM_REQ_BYTES); model size = "
                         "measured GPU footprint of one loaded model (its python-backend stub's CUDA context "
                         "included)")
    return rec
