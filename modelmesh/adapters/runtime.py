"""The mmesh.ModelRuntime SPI, generic over the model-server driver.

loadModel = [pull] -> lay out -> driver.load, bounded by LOADING_CONCURRENCY (callers
queue) and LOADTIME_TIMEOUT. Any failure or cancellation undoes every step, so a failed
load leaves neither files nor a half-loaded model behind. runtimeStatus answers READY only
once the server is ready and whatever an earlier adapter process left has been unloaded.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from modelmesh.adapters.driver import ModelServerDriver
from modelmesh.adapters.errors import AdapterError, InvalidModel
from modelmesh.adapters.files import remove_path
from modelmesh.adapters.request import (
    ModelRequest, check_model_id, disk_size_of, model_type_of, parse_key, schema_path_of,
)
from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_runtime_pb2 as pb
from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeServicer
from modelmesh.storage.errors import PullError, PullInputError, TransientError

log = get_logger("modelmesh.adapters.runtime")

STAGING_DIR = ".pulling"  # the puller's in-progress pulls under ROOT_MODEL_DIR


class ModelPuller(Protocol):
    """modelmesh.storage.Puller, as far as the adapter uses it."""

    async def pull(self, model_id: str, model_path: str, model_key: str) -> Any: ...

    async def remove(self, model_id: str) -> None: ...


@dataclass(frozen=True)
class RuntimeLimits:
    capacity_bytes: int
    loading_concurrency: int
    loading_timeout_ms: int
    default_model_size: int
    size_multiplier: float
    runtime_version: str = ""
    limit_per_model_concurrency: int = 0


class ModelRuntime(ModelRuntimeServicer):
    def __init__(self, driver: ModelServerDriver, limits: RuntimeLimits, puller: ModelPuller | None = None,
                 model_root: str | None = None) -> None:
        self.driver = driver
        self.limits = limits
        self.puller = puller
        self.model_root = model_root  # ROOT_MODEL_DIR: where the puller puts <modelId>/
        self._loading = asyncio.Semaphore(limits.loading_concurrency)
        self._model_locks: dict[str, asyncio.Lock] = {}
        self._sizes: dict[str, int] = {}  # loaded model id -> size reported to the mesh
        self._purge_lock = asyncio.Lock()
        self._purged = False

    # --- loadModel ---------------------------------------------------------------------

    def _check_model_id(self, model_id: str) -> None:
        check_model_id(model_id)
        # Pulled files go to <ROOT_MODEL_DIR>/<id>: an id must not name the adapter's own paths.
        reserved = {os.path.basename(self.driver.layout_root), STAGING_DIR,
                    *(os.path.basename(p) for p in getattr(self.driver, "owned_files", ()))}
        if model_id in reserved:
            raise InvalidModel(f"model id {model_id!r} is reserved by the adapter")

    def _lock_for(self, model_id: str) -> asyncio.Lock:
        return self._model_locks.setdefault(model_id, asyncio.Lock())

    def _release_lock(self, model_id: str, lock: asyncio.Lock) -> None:
        if not lock.locked() and not getattr(lock, "_waiters", None) and self._model_locks.get(model_id) is lock:
            del self._model_locks[model_id]

    async def _resolve(self, request: pb.LoadModelRequest) -> ModelRequest:
        """Pull when the puller is embedded; the request then names local files."""
        key = parse_key(request.modelKey)
        model_type = model_type_of(key, request.modelType)
        if self.puller is not None:
            try:
                pulled = await self.puller.pull(request.modelId, request.modelPath, request.modelKey)
            except PullInputError as e:  # bad key, storage config or path: nothing was attempted
                raise InvalidModel(str(e)) from None
            except TransientError as e:  # still failing after the puller's retries
                raise AdapterError(f"pulling the model from storage failed: {e}", grpc.StatusCode.UNAVAILABLE) from None
            except PullError as e:
                raise AdapterError(f"pulling the model from storage failed: {e}") from None
            return ModelRequest(request.modelId, model_type, pulled.local_path, pulled.schema_path,
                                pulled.disk_size_bytes or None, dict(pulled.model_key))
        if not request.modelPath:
            raise InvalidModel("modelPath is empty")
        return ModelRequest(request.modelId, model_type, request.modelPath, schema_path_of(key), disk_size_of(key), key)

    async def _load(self, request: pb.LoadModelRequest, progress: dict[str, float]) -> int:
        t0 = time.monotonic()
        model = await self._resolve(request)
        t1 = time.monotonic()
        laid_out = await asyncio.to_thread(
            self.driver.lay_out, model.model_id, model.model_type, model.model_path, model.schema_path
        )
        t2 = time.monotonic()
        progress.update(pull_s=t1 - t0, layout_s=t2 - t1)
        await self.driver.load(model.model_id, laid_out)
        progress["server_s"] = time.monotonic() - t2
        if self.driver.reports_size:
            return 0  # the mesh then asks modelSize, which the server measures
        if model.disk_size_bytes:
            return int(model.disk_size_bytes * self.limits.size_multiplier)
        return self.limits.default_model_size

    async def _undo(self, model_id: str, server_touched: bool) -> None:
        """Best effort: a failed, cancelled or unloaded model leaves nothing behind."""
        if server_touched:
            try:
                await self.driver.unload(model_id)
            except Exception as e:  # noqa: BLE001
                log.warning("unload after failed load failed", model_id=model_id, error=str(e))
        await asyncio.to_thread(remove_path, os.path.join(self.driver.layout_root, model_id))
        if self.puller is not None:
            try:
                await self.puller.remove(model_id)
            except Exception as e:  # noqa: BLE001
                log.warning("removing pulled files failed", model_id=model_id, error=str(e))

    async def loadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext) -> pb.LoadModelResponse:
        model_id = request.modelId
        try:
            self._check_model_id(model_id)
        except InvalidModel as e:
            await context.abort(e.code, e.message)
        started = time.monotonic()
        lock = self._lock_for(model_id)
        try:
            # Same-id calls serialize before taking a loading slot, so they never block others.
            async with lock, self._loading:
                waited = time.monotonic() - started
                progress: dict[str, float] = {}  # stage timings; layout_s set = the server was asked
                try:
                    size = await asyncio.wait_for(self._load(request, progress), self.limits.loading_timeout_ms / 1000)
                except BaseException as e:
                    await asyncio.shield(self._undo(model_id, server_touched="layout_s" in progress))
                    if isinstance(e, asyncio.TimeoutError):
                        raise AdapterError(
                            f"loading model {model_id} timed out after {self.limits.loading_timeout_ms} ms",
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                        ) from None
                    raise
                self._sizes[model_id] = size
        except AdapterError as e:
            log.warning("model load failed", model_id=model_id, code=e.code.name, error=e.message)
            await context.abort(e.code, e.message)
        except asyncio.CancelledError:
            log.info("model load cancelled; nothing left behind", model_id=model_id)
            raise
        finally:
            self._release_lock(model_id, lock)
        log.info("model loaded", model_id=model_id, size_bytes=size, queued_s=round(waited, 3),
                 **{k: round(v, 3) for k, v in progress.items()})
        return pb.LoadModelResponse(sizeInBytes=size, maxConcurrency=self.limits.limit_per_model_concurrency)

    # --- unloadModel -------------------------------------------------------------------

    async def unloadModel(self, request: pb.UnloadModelRequest,
                          context: grpc.aio.ServicerContext) -> pb.UnloadModelResponse:
        model_id = request.modelId
        try:
            self._check_model_id(model_id)
        except InvalidModel as e:
            await context.abort(e.code, e.message)
        lock = self._lock_for(model_id)
        try:
            async with lock:
                try:
                    await self.driver.unload(model_id)
                except AdapterError as e:
                    await context.abort(e.code, f"unloading model {model_id} failed: {e.message}")
                self._sizes.pop(model_id, None)
                await self._undo(model_id, server_touched=False)
        finally:
            self._release_lock(model_id, lock)
        log.info("model unloaded", model_id=model_id)
        return pb.UnloadModelResponse()

    # --- sizes -------------------------------------------------------------------------

    async def predictModelSize(self, request: pb.PredictModelSizeRequest,
                               context: grpc.aio.ServicerContext) -> pb.PredictModelSizeResponse:
        # Fast and conservative: the key's disk size when the controller knows it, else the default.
        try:
            disk = disk_size_of(parse_key(request.modelKey))
        except InvalidModel:
            disk = None
        size = int(disk * self.limits.size_multiplier) if disk else self.limits.default_model_size
        return pb.PredictModelSizeResponse(sizeInBytes=size)

    async def modelSize(self, request: pb.ModelSizeRequest, context: grpc.aio.ServicerContext) -> pb.ModelSizeResponse:
        size = await self.driver.model_size(request.modelId) if self.driver.reports_size else None
        if size is None:
            size = self._sizes.get(request.modelId) or self.limits.default_model_size
        if request.modelId in self._sizes:
            self._sizes[request.modelId] = size
        return pb.ModelSizeResponse(sizeInBytes=size)

    # --- runtimeStatus -----------------------------------------------------------------

    async def purge(self) -> None:
        """Unload what the server still has from before and drop every local model dir.

        The layout root and the server's own files (OVMS config, TorchServe properties,
        MLServer settings) live under ROOT_MODEL_DIR too and stay; everything else there is
        pulled models (or a pull's staging) from an earlier life.
        """
        await self.driver.unload_all()
        await asyncio.to_thread(self._purge_files)
        self._sizes.clear()

    def _purge_files(self) -> None:
        layout_root = os.path.realpath(self.driver.layout_root)
        if os.path.isdir(layout_root):
            for entry in os.scandir(layout_root):
                if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
                    remove_path(entry.path)
        if self.puller is None or self.model_root is None or not os.path.isdir(self.model_root):
            return
        keep = {layout_root, *(os.path.realpath(p) for p in getattr(self.driver, "owned_files", ()))}
        for entry in os.scandir(self.model_root):
            if os.path.realpath(entry.path) not in keep:
                remove_path(entry.path)
                log.info("purged leftover model files", path=entry.path)

    async def runtimeStatus(self, request: pb.RuntimeStatusRequest,
                            context: grpc.aio.ServicerContext) -> pb.RuntimeStatusResponse:
        if not await self.driver.is_ready():
            return pb.RuntimeStatusResponse(status=pb.RuntimeStatusResponse.STARTING)
        async with self._purge_lock:
            if not self._purged:
                try:
                    await self.purge()
                except Exception as e:  # noqa: BLE001 - stay STARTING; the mesh asks again
                    log.warning("start-up purge failed", error=str(e))
                    return pb.RuntimeStatusResponse(status=pb.RuntimeStatusResponse.STARTING)
                self._purged = True
                log.info("start-up purge done; runtime ready")
        version = self.limits.runtime_version or await self.driver.version()
        return pb.RuntimeStatusResponse(
            status=pb.RuntimeStatusResponse.READY,
            capacityInBytes=self.limits.capacity_bytes,
            maxLoadingConcurrency=self.limits.loading_concurrency,
            modelLoadingTimeoutMs=self.limits.loading_timeout_ms,
            defaultModelSizeInBytes=self.limits.default_model_size,
            runtimeVersion=version,
            numericRuntimeVersion=numeric_version(version),
            methodInfos={name: pb.RuntimeStatusResponse.MethodInfo(idInjectionPath=list(path))
                         for name, path in self.driver.method_infos.items()},
            limitModelConcurrency=self.limits.limit_per_model_concurrency > 0,
            allowAnyMethod=False,
        )


def numeric_version(version: str) -> int:
    """`2.51.0` -> 2051000 (major*10^6 + minor*10^3 + patch); 0 when not numeric."""
    parts = version.lstrip("v").split("-", 1)[0].split(".")
    try:
        nums = [int(p) for p in parts[:3]]
    except ValueError:
        return 0
    nums += [0] * (3 - len(nums))
    return nums[0] * 1_000_000 + nums[1] * 1_000 + nums[2]
