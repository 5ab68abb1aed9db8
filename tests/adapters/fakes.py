"""Protocol-faithful fakes of the model servers that cannot run on this machine.

OVMS and TorchServe ship as large native/Java containers with no pip/apt install here, so
the adapter's drivers are tested against these small servers that speak the same wire
protocols (OVMS REST config API; TorchServe management + inference gRPC) and keep the
same observable rules (status JSON shapes, codes for unknown models, paging).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field

import grpc
from aiohttp import web

from harness.process import free_port
from modelmesh.protos import torchserve_inference_pb2 as inf_pb
from modelmesh.protos import torchserve_management_pb2 as mgmt_pb
from modelmesh.protos.torchserve_inference_pb2_grpc import (
    InferenceAPIsServiceServicer, add_InferenceAPIsServiceServicer_to_server,
)
from modelmesh.protos.torchserve_management_pb2_grpc import (
    ManagementAPIsServiceServicer, add_ManagementAPIsServiceServicer_to_server,
)

CORRUPT = b"corrupt"  # a model file with this content fails to load in both fakes


def _ok(state: str, version: str = "1") -> dict:
    return {"version": version, "state": state, "status": {"error_code": "OK", "error_message": "OK"}}


class FakeOvms:
    """OVMS's config API: `POST /v1/config/reload` re-reads the config JSON file and answers
    201 + every model's version status (or 500 + {"error"} when a model failed, whose
    details `GET /v1/config` then shows); removed models stay listed with state END."""

    def __init__(self, config_file: str) -> None:
        self.config_file = config_file
        self.port = free_port()
        self.statuses: dict[str, list[dict]] = {}
        self.reloads = 0
        self.reloaded_sets: list[set[str]] = []  # the models each reload saw in the config
        self.loaded_paths: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None

    def _load_version(self, base_path: str) -> dict:
        versions = sorted((int(v) for v in os.listdir(base_path) if v.isdigit()), reverse=True) \
            if os.path.isdir(base_path) else []
        if not versions:
            return {"version": "1", "state": "LOADING",
                    "status": {"error_code": "UNKNOWN", "error_message": "No version found"}}
        version_dir = os.path.join(base_path, str(versions[0]))
        for name in os.listdir(version_dir):
            with open(os.path.join(version_dir, name), "rb") as f:
                if f.read() == CORRUPT:
                    return {"version": str(versions[0]), "state": "LOADING",
                            "status": {"error_code": "UNKNOWN", "error_message": "Error while loading a model"}}
        return _ok("AVAILABLE", str(versions[0]))

    async def reload(self, request: web.Request) -> web.Response:
        async with self._lock:
            self.reloads += 1
            with open(self.config_file) as f:
                wanted = {m["config"]["name"]: m["config"]["base_path"] for m in json.load(f)["model_config_list"]}
            self.reloaded_sets.append(set(wanted))
            failed = False
            for name in list(self.statuses):
                if name not in wanted:
                    self.statuses[name] = [_ok("END")]
                    self.loaded_paths.pop(name, None)
            for name, base_path in wanted.items():
                if self.loaded_paths.get(name) == base_path and self.statuses[name][0]["state"] == "AVAILABLE":
                    continue
                status = self._load_version(base_path)
                self.statuses[name] = [status]
                if status["state"] == "AVAILABLE":
                    self.loaded_paths[name] = base_path
                else:
                    failed = True
            if failed:
                return web.json_response(
                    {"error": "Reloading config file failed. Check server logs for more info."}, status=500)
            return web.json_response(self._config(), status=201)

    def _config(self) -> dict:
        return {name: {"model_version_status": s} for name, s in self.statuses.items()}

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(self._config())

    async def metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "OpenVINO Model Server", "version": "2024.4", "extensions": []})

    async def start(self) -> FakeOvms:
        app = web.Application()
        app.router.add_post("/v1/config/reload", self.reload)
        app.router.add_get("/v1/config", self.config)
        app.router.add_get("/v2", self.metadata)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Registered:
    url: str
    workers: int
    memory: int = 0


@dataclass
class FakeTorchServe(ManagementAPIsServiceServicer, InferenceAPIsServiceServicer):
    """TorchServe's management API over gRPC: archives are resolved in the model store,
    unknown models answer NOT_FOUND, ListModels pages with nextPageToken, DescribeModel
    reports each worker's memoryUsage (0 until the worker has reported)."""

    model_store: str
    worker_memory: int = 50_000_000
    page_limit: int = 1000  # TorchServe caps a ListModels page at 1000
    models: dict[str, Registered] = field(default_factory=dict)
    register_requests: list = field(default_factory=list)
    port: int = 0
    server: grpc.aio.Server | None = None

    async def RegisterModel(self, request, context):
        self.register_requests.append(request)
        path = os.path.join(self.model_store, request.url)
        if not os.path.isfile(path):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model not found in model store: {request.url}")
        if request.model_name in self.models:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS,
                                f"Model version 1.0 is already registered for model {request.model_name}")
        with open(path, "rb") as f:
            if f.read() == CORRUPT:
                await context.abort(grpc.StatusCode.INTERNAL, f"Failed to start workers for model {request.model_name}")
        self.models[request.model_name] = Registered(request.url, request.initial_workers or 1, self.worker_memory)
        return mgmt_pb.ManagementResponse(
            msg=f'Model "{request.model_name}" Version: 1.0 registered with {request.initial_workers} initial workers')

    async def UnregisterModel(self, request, context):
        if self.models.pop(request.model_name, None) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model not found: {request.model_name}")
        return mgmt_pb.ManagementResponse(msg=f'Model "{request.model_name}" unregistered')

    async def DescribeModel(self, request, context):
        m = self.models.get(request.model_name)
        if m is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model not found: {request.model_name}")
        workers = [{"id": str(9000 + i), "status": "READY", "memoryUsage": m.memory, "gpu": False}
                   for i in range(m.workers)]
        return mgmt_pb.ManagementResponse(msg=json.dumps([{
            "modelName": request.model_name, "modelVersion": "1.0", "modelUrl": m.url, "workers": workers}], indent=2))

    async def ListModels(self, request, context):
        limit = min(request.limit if request.limit > 0 else 100, self.page_limit)
        names = sorted(self.models)
        start = request.next_page_token
        page = names[start:start + limit]
        body: dict = {"models": [{"modelName": n, "modelUrl": self.models[n].url} for n in page]}
        if start + limit < len(names):
            body["nextPageToken"] = str(start + limit)
        return mgmt_pb.ManagementResponse(msg=json.dumps(body))

    async def Ping(self, request, context):
        return inf_pb.TorchServeHealthResponse(health=json.dumps({"status": "Healthy"}))

    async def start(self) -> FakeTorchServe:
        self.server = grpc.aio.server()
        add_ManagementAPIsServiceServicer_to_server(self, self.server)
        add_InferenceAPIsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
