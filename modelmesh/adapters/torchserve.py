"""TorchServe: management gRPC (RegisterModel/UnregisterModel/DescribeModel/ListModels).

The model store is <ROOT_MODEL_DIR>/_torchserve_models, holding `<id>.mar` links and the
`mmconfig.properties` TorchServe is started with. Size comes from the workers' reported
memory (+10%) once they run, else the archive size x MODELSIZE_MULTIPLIER.
"""

from __future__ import annotations

import asyncio
import json
import os

import grpc

from modelmesh.adapters.errors import AdapterError, ServerLoadError, ServerUnavailable
from modelmesh.adapters.files import remove_path, write_atomic
from modelmesh.adapters.layouts import torchserve as layout
from modelmesh.config.adapter import AdapterSettings
from modelmesh.observability.logging import get_logger
from modelmesh.protos import torchserve_inference_pb2 as inference_pb
from modelmesh.protos import torchserve_management_pb2 as mgmt_pb
from modelmesh.protos.torchserve_inference_pb2_grpc import InferenceAPIsServiceStub
from modelmesh.protos.torchserve_management_pb2_grpc import ManagementAPIsServiceStub

log = get_logger("modelmesh.adapters.torchserve")

LAYOUT_DIR = "_torchserve_models"
CONFIG_FILE = "mmconfig.properties"
CONTROL_TIMEOUT_S = 10.0
# Workers report memory a little after they start; ask a few times before falling back.
SIZE_ATTEMPTS, SIZE_INTERVAL_S = 5, 0.5
LIST_PAGE = 1000


def store_config(model_store: str) -> str:
    return (
        "enable_envvars_config=true\n"
        f"model_store={model_store}\n"
        "metric_time_interval=10\n"
        # TorchServe's default REST port 8080 clashes with the mesh's internal port.
        "inference_address=http://127.0.0.1:8083\n"
    )


def worker_memory(describe_msg: str) -> int:
    """Sum of `memoryUsage` over the workers of the first version in a DescribeModel answer."""
    try:
        versions = json.loads(describe_msg)
    except ValueError:
        return 0
    if not isinstance(versions, list) or not versions or not isinstance(versions[0], dict):
        return 0
    total = 0
    for w in versions[0].get("workers") or []:
        usage = w.get("memoryUsage", 0) if isinstance(w, dict) else 0
        if not isinstance(usage, int) or usage <= 0:
            return 0  # a worker without a figure yet: the sum would undercount
        total += usage
    return total


def endpoint_target(endpoint: str, host: str) -> str:
    """RUNTIME_DATA_ENDPOINT (`port:N`, `host:port` or `unix:/path`) as a gRPC target."""
    if endpoint.startswith("port:"):
        return f"{host}:{endpoint[5:]}"
    return endpoint


class TorchServeDriver:
    display_name = "TorchServe"
    method_infos = {"org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions": (1,)}
    reports_size = True

    def __init__(self, management_target: str, data_target: str | None, layout_root: str, initial_workers: int,
                 batch_size: int, max_batch_delay: int, size_multiplier: float) -> None:
        self.target = management_target
        self.data_target = data_target
        self.layout_root = layout_root
        self.initial_workers = initial_workers
        self.batch_size = batch_size
        self.max_batch_delay = max_batch_delay
        self.size_multiplier = size_multiplier
        self._channels: list[grpc.aio.Channel] = []
        self._mgmt: ManagementAPIsServiceStub | None = None
        self._inference: InferenceAPIsServiceStub | None = None

    async def start(self) -> None:
        os.makedirs(self.layout_root, exist_ok=True)
        # TorchServe's container waits for this file; write it atomically.
        write_atomic(os.path.join(self.layout_root, CONFIG_FILE), store_config(self.layout_root))
        channel = grpc.aio.insecure_channel(self.target)
        self._channels.append(channel)
        self._mgmt = ManagementAPIsServiceStub(channel)
        if self.data_target:
            data = grpc.aio.insecure_channel(self.data_target)
            self._channels.append(data)
            self._inference = InferenceAPIsServiceStub(data)

    async def close(self) -> None:
        for c in self._channels:
            await c.close()

    @property
    def mgmt(self) -> ManagementAPIsServiceStub:
        assert self._mgmt is not None, "driver not started"
        return self._mgmt

    def _error(self, what: str, e: grpc.aio.AioRpcError) -> AdapterError:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            return ServerUnavailable(f"TorchServe at {self.target} is not reachable ({what}): {e.details()}")
        return ServerLoadError(f"TorchServe failed to {what}: {e.details() or e.code().name}")

    async def is_ready(self) -> bool:
        try:
            if self._inference is not None:
                health = (await self._inference.Ping(inference_pb.PingRequest(), timeout=2)).health
                return json.loads(health).get("status") == "Healthy"
            await self.mgmt.ListModels(mgmt_pb.ListModelsRequest(limit=1), timeout=2)
            return True
        except (grpc.aio.AioRpcError, ValueError, AttributeError):
            return False

    async def version(self) -> str:
        return ""

    def lay_out(self, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
        return layout.lay_out(self.layout_root, model_id, model_type, model_path, schema_path)

    async def load(self, model_id: str, laid_out: str) -> None:
        request = mgmt_pb.RegisterModelRequest(
            model_name=model_id, url=os.path.basename(laid_out), synchronous=True,
            initial_workers=self.initial_workers, batch_size=self.batch_size, max_batch_delay=self.max_batch_delay,
        )
        try:
            reply = await self.mgmt.RegisterModel(request)
        except grpc.aio.AioRpcError as e:
            raise self._error(f"register model {model_id}", e) from None
        log.info("model registered", model_id=model_id, message=reply.msg)

    async def unload(self, model_id: str) -> None:
        try:
            await self.mgmt.UnregisterModel(mgmt_pb.UnregisterModelRequest(model_name=model_id),
                                            timeout=CONTROL_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise self._error(f"unregister model {model_id}", e) from None
        remove_path(os.path.join(self.layout_root, layout.archive_name(model_id)))

    async def unload_all(self) -> None:
        names: list[str] = []
        token = 0
        while True:
            try:
                reply = await self.mgmt.ListModels(
                    mgmt_pb.ListModelsRequest(limit=LIST_PAGE, next_page_token=token), timeout=CONTROL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as e:
                raise self._error("list its models", e) from None
            try:
                page = json.loads(reply.msg)
            except ValueError:
                raise ServerLoadError(f"TorchServe ListModels answered invalid JSON: {reply.msg[:200]!r}") from None
            names += [m["modelName"] for m in page.get("models", []) if isinstance(m, dict) and "modelName" in m]
            next_token = page.get("nextPageToken")
            if not next_token or int(next_token) <= token:
                break
            token = int(next_token)
        for name in names:
            await self.unload(name)
            log.info("unloaded leftover model", model_id=name)

    async def model_size(self, model_id: str) -> int | None:
        for attempt in range(SIZE_ATTEMPTS):
            try:
                reply = await self.mgmt.DescribeModel(
                    mgmt_pb.DescribeModelRequest(model_name=model_id, model_version="all"), timeout=CONTROL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as e:
                log.warning("DescribeModel failed; using the archive size", model_id=model_id, details=e.details())
                break
            used = worker_memory(reply.msg)
            if used > 0:
                return used + used // 10
            if attempt + 1 < SIZE_ATTEMPTS:
                await asyncio.sleep(SIZE_INTERVAL_S)
        try:
            return int(os.stat(os.path.join(self.layout_root, layout.archive_name(model_id))).st_size
                       * self.size_multiplier)
        except OSError:
            return None


def make_driver(settings: AdapterSettings) -> TorchServeDriver:
    data = None
    if settings.runtime_data_endpoint:
        data = endpoint_target(settings.runtime_data_endpoint, settings.runtime_host)
    return TorchServeDriver(
        f"{settings.runtime_host}:{settings.runtime_port}", data,
        os.path.join(settings.root_model_dir, LAYOUT_DIR),
        initial_workers=max(1, settings.limit_per_model_concurrency),
        batch_size=settings.request_batch_size, max_batch_delay=settings.max_batch_delay_secs,
        size_multiplier=settings.size_multiplier,
    )
