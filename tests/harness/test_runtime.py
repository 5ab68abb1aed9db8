"""A small model runtime for mesh tests: the ModelRuntime SPI plus V2 ModelInfer on one port.

It stands in for a real model server where the test needs to control what a runtime does
(load delays, failures, sizes, crashes); tests through real MLServer/Triton cover the real
thing. Behaviour per model comes from its model key JSON:
  {"load_ms": 200, "fail": "message", "size": 123456, "infer_ms": 5, "fail_on": ["runtime name", ...],
   "max_concurrency": 2, "unavailable_loads": 1, "hold_unload": true}
(unavailable_loads: the first N load attempts of the model answer UNAVAILABLE; hold_unload:
unloadModel of the model stays in progress, still holding its size, until `/test.Admin/
ReleaseUnloads` is called: a slow unload)
(size 0: loadModel reports no size, so the mesh asks modelSize)
ModelInfer answers with the model name it was addressed to, the mm-model-id header it saw,
this runtime's name (env TEST_RUNTIME_NAME) and its inputs echoed as raw outputs.

Run: python -m harness.test_runtime  (env TEST_RUNTIME_PORT, TEST_RUNTIME_CAPACITY,
TEST_RUNTIME_NAME, TEST_RUNTIME_DEFAULT_SIZE, TEST_RUNTIME_LOAD_TIMEOUT_MS, TEST_RUNTIME_LOADING;
TEST_RUNTIME_SOCKET listens on a unix socket instead; TEST_RUNTIME_ALLOW_ANY_METHOD=0 reports
allowAnyMethod false with methodInfos for ModelInfer and ModelMetadata, as the built-in adapters do;
TEST_RUNTIME_LIMIT_CONCURRENCY=1 reports limitModelConcurrency)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import grpc

from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_runtime_pb2 as rt
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer, add_GRPCInferenceServiceServicer_to_server
from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeServicer, add_ModelRuntimeServicer_to_server


class State:
    def __init__(self) -> None:
        self.name = os.environ.get("TEST_RUNTIME_NAME", "runtime")
        self.capacity = int(os.environ.get("TEST_RUNTIME_CAPACITY", str(100 * 1000 * 1000)))
        self.default_size = int(os.environ.get("TEST_RUNTIME_DEFAULT_SIZE", "1000000"))
        self.load_timeout_ms = int(os.environ.get("TEST_RUNTIME_LOAD_TIMEOUT_MS", "10000"))
        self.loading = int(os.environ.get("TEST_RUNTIME_LOADING", "4"))
        self.allow_any_method = os.environ.get("TEST_RUNTIME_ALLOW_ANY_METHOD", "1") != "0"
        self.limit_concurrency = os.environ.get("TEST_RUNTIME_LIMIT_CONCURRENCY", "0") == "1"
        self.loaded: dict[str, dict] = {}
        self.peak_bytes = 0
        self.loads = 0
        self.load_attempts: dict[str, int] = {}
        self.deadlines: list[float | None] = []  # time remaining (s) each ModelInfer arrived with
        self.unloads_released = asyncio.Event()
        self.unloading: set[str] = set()  # held unloads in progress


class Runtime(ModelRuntimeServicer):
    def __init__(self, state: State) -> None:
        self.s = state

    async def runtimeStatus(self, request, context):
        self.s.loaded.clear()  # the SPI: purge anything left before answering READY
        return rt.RuntimeStatusResponse(
            status=rt.RuntimeStatusResponse.READY, capacityInBytes=self.s.capacity,
            maxLoadingConcurrency=self.s.loading, modelLoadingTimeoutMs=self.s.load_timeout_ms,
            defaultModelSizeInBytes=self.s.default_size, runtimeVersion="test-1",
            methodInfos={f"inference.GRPCInferenceService/{m}": rt.RuntimeStatusResponse.MethodInfo(
                idInjectionPath=[1]) for m in ("ModelInfer", "ModelMetadata")},
            allowAnyMethod=self.s.allow_any_method, limitModelConcurrency=self.s.limit_concurrency)

    async def loadModel(self, request, context):
        spec = json.loads(request.modelKey or "{}")
        self.s.load_attempts[request.modelId] = self.s.load_attempts.get(request.modelId, 0) + 1
        if spec.get("load_ms"):
            await asyncio.sleep(spec["load_ms"] / 1000)
        if self.s.load_attempts[request.modelId] <= spec.get("unavailable_loads", 0):
            # As an adapter answers while it cannot reach its model server.
            await context.abort(grpc.StatusCode.UNAVAILABLE, "model server unreachable")
        if spec.get("fail"):
            await context.abort(grpc.StatusCode.INTERNAL, spec["fail"])
        if self.s.name in spec.get("fail_on", ()):  # fails on the runtimes named, loads elsewhere
            await context.abort(grpc.StatusCode.INTERNAL, f"load failed on {self.s.name}")
        size = int(spec.get("size", self.s.default_size))
        self.s.loaded[request.modelId] = {"size": size or self.s.default_size, "spec": spec}
        self.s.loads += 1
        self.s.peak_bytes = max(self.s.peak_bytes, sum(m["size"] for m in self.s.loaded.values()))
        return rt.LoadModelResponse(sizeInBytes=size, maxConcurrency=int(spec.get("max_concurrency", 0)))

    async def unloadModel(self, request, context):
        m = self.s.loaded.get(request.modelId)
        if m is not None and m["spec"].get("hold_unload"):
            self.s.unloading.add(request.modelId)
            try:
                await self.s.unloads_released.wait()
            finally:
                self.s.unloading.discard(request.modelId)
        self.s.loaded.pop(request.modelId, None)
        return rt.UnloadModelResponse()

    async def predictModelSize(self, request, context):
        spec = json.loads(request.modelKey or "{}")
        return rt.PredictModelSizeResponse(sizeInBytes=int(spec.get("size", self.s.default_size)))

    async def modelSize(self, request, context):
        m = self.s.loaded.get(request.modelId)
        return rt.ModelSizeResponse(sizeInBytes=m["size"] if m else 0)


class Inference(GRPCInferenceServiceServicer):
    def __init__(self, state: State) -> None:
        self.s = state

    async def ModelInfer(self, request, context):
        self.s.deadlines.append(context.time_remaining())
        model = self.s.loaded.get(request.model_name)
        if model is None:
            # Triton's wording, which the mesh treats as "runtime lost the model".
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"Request for unknown model: '{request.model_name}' is not found")
        if model["spec"].get("infer_ms"):
            await asyncio.sleep(model["spec"]["infer_ms"] / 1000)
        header = dict(context.invocation_metadata() or ()).get("mm-model-id", "")
        resp = v2.ModelInferResponse(model_name=request.model_name, id=request.id)
        resp.parameters["runtime"].string_param = self.s.name
        resp.parameters["mm-model-id"].string_param = header
        for tensor, raw in zip(request.inputs, request.raw_input_contents):
            resp.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            resp.raw_output_contents.append(raw)
        return resp

    async def ServerReady(self, request, context):
        return v2.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        if request.name not in self.s.loaded:  # as MLServer / Triton say it
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {request.name} not found")
        return v2.ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request, context):
        if request.name not in self.s.loaded:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {request.name} not found")
        return v2.ModelMetadataResponse(name=request.name, platform=self.s.name)


async def main() -> None:
    state = State()
    server = grpc.aio.server()
    add_ModelRuntimeServicer_to_server(Runtime(state), server)
    add_GRPCInferenceServiceServicer_to_server(Inference(state), server)

    # `/test.Admin/Loaded` lists loaded models (JSON) so tests can check the runtime side.
    async def loaded(request: bytes, context) -> bytes:
        return json.dumps({"loaded": {k: v["size"] for k, v in state.loaded.items()},
                           "peak_bytes": state.peak_bytes, "loads": state.loads,
                           "load_attempts": state.load_attempts, "deadlines": state.deadlines[-100:],
                           "unloading": sorted(state.unloading)}).encode()

    async def release_unloads(request: bytes, context) -> bytes:
        state.unloads_released.set()
        return b""

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Admin", {"Loaded": grpc.unary_unary_rpc_method_handler(loaded),
                       "ReleaseUnloads": grpc.unary_unary_rpc_method_handler(release_unloads)}),))
    socket_path = os.environ.get("TEST_RUNTIME_SOCKET")
    if socket_path:
        server.add_insecure_port(f"unix://{socket_path}")
    else:
        server.add_insecure_port(f"127.0.0.1:{int(os.environ.get('TEST_RUNTIME_PORT', '8085'))}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(main())
