"""Inference routing: every non-mesh gRPC method is forwarded, as raw bytes, to a copy of
the target model - here (the local runtime) or on the peer instance that holds it - loading
it on a cache miss.

The hot path (a hit) reads only in-memory state: the model registry view and this
instance's cache. No KV store round trip, no protobuf decode of the payload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from modelmesh.mesh.cache import CopyState, LocalCache, LocalCopy, now_ms
from modelmesh.mesh.channels import PeerChannels, RawChannel
from modelmesh.mesh.constraints import TypeConstraints
from modelmesh.mesh.dataplane import DataPlaneConfig
from modelmesh.mesh.errors import InvalidRequest, LoadFailed, MeshError, ModelNotFound, RuntimeDown
from modelmesh.mesh.loader import ModelLoader
from modelmesh.mesh.metrics import MeshMetrics
from modelmesh.mesh.payloads import REQUEST_TYPE, RESPONSE_TYPE, PayloadProcessors
from modelmesh.mesh.placement import MAX_FAILED_INSTANCES, choose_instance
from modelmesh.mesh.protowire import WireError, extract_string, inject_string
from modelmesh.mesh.records import InstanceRecord, ModelRecord, VModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.mesh.v2_server import MODEL_NAME_PATHS
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.router")

MODEL_ID = "mm-model-id"
VMODEL_ID = "mm-vmodel-id"
INTERNAL = "mm-internal"  # set on requests one instance forwards to another
LOAD_FAILED = "mm-load-failed"  # trailing metadata: the forwarded-to instance failed to load
BALANCED = "mm-balanced"
_ID_HEADERS = frozenset({MODEL_ID, VMODEL_ID, MODEL_ID + "-bin", VMODEL_ID + "-bin"})
_DROP_HEADERS = _ID_HEADERS | frozenset({INTERNAL, BALANCED, "content-type", "te", "user-agent", "grpc-accept-encoding",
                                         "grpc-encoding", "grpc-timeout", "accept-encoding"})


class _RuntimeLostModel(Exception):
    """The runtime answered NOT_FOUND for a model the mesh has loaded there."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(error.details())
        self.error = error


def runtime_said_not_found(e: grpc.aio.AioRpcError) -> bool:
    """Runtimes disagree on how to say 'no such model' (mesh.md): count them all."""
    code, details = e.code(), (e.details() or "")
    if code is grpc.StatusCode.NOT_FOUND:
        return True
    lowered = details.lower()
    if code is grpc.StatusCode.UNAVAILABLE and "unknown model" in lowered and "not found" in lowered:
        return True  # Triton
    return code is grpc.StatusCode.INVALID_ARGUMENT and lowered.startswith("model ") and "not found" in lowered


@dataclass
class RoutingConfig:
    dataplane: DataPlaneConfig
    constraints: TypeConstraints
    allow_any_method: bool = True
    # method (as "/pkg.Service/Method") -> field path that receives the model id
    injection_paths: dict[str, tuple[int, ...]] = field(default_factory=dict)
    load_failure_expiry_ms: int = 900000
    default_size: int = 1000000
    multi_parallelism: int = 4


class Router:
    def __init__(self, instance_id: str, cache: LocalCache, loader: ModelLoader, models: Table[ModelRecord],
                 vmodels: Table[VModelRecord], instances: Table[InstanceRecord], serving: RawChannel,
                 peers: PeerChannels, config: RoutingConfig, metrics: MeshMetrics) -> None:
        self.instance_id = instance_id
        self.cache = cache
        self.loader = loader
        self.models = models
        self.vmodels = vmodels
        self.instances = instances
        self.serving = serving
        self.peers = peers
        self.config = config
        # V2 model-level RPCs get the concrete id in their name field unless the runtime says otherwise.
        self._injection_paths = {**MODEL_NAME_PATHS, **config.injection_paths}
        self.metrics = metrics
        self._requests = metrics.requests
        self._peer_inflight: dict[str, int] = {}
        self.requests_by_model: dict[str, int] = {}  # since the last take_request_counts()
        self._refusals: dict[str, str | None] = {}
        # Called when a local copy has more requests in flight than a copy should take.
        self.on_overloaded: Callable[[str], None] = lambda model_id: None
        self.max_inflight_per_copy = 0
        self.limit_model_concurrency = False
        self.payloads: PayloadProcessors | None = None  # MM_PAYLOAD_PROCESSORS, when set

    def set_dataplane(self, dataplane: DataPlaneConfig) -> None:
        """A new data-plane config (tc-config changed): gating verdicts are recomputed."""
        self.config.dataplane = dataplane
        self._refusals.clear()

    def take_request_counts(self) -> dict[str, int]:
        """Requests per model since the last call (for request rates)."""
        counts, self.requests_by_model = self.requests_by_model, {}
        return counts

    # --- entry point ----------------------------------------------------------------------

    async def handle(self, method: str, data: bytes, context: grpc.aio.ServicerContext, internal: bool) -> bytes:
        """One request. An external one is timed as `api_request` (with its sizes); a request a
        peer forwarded was counted by that peer, and the runtime call by `_call_runtime`."""
        started = time.perf_counter()
        code = "OK"
        response: bytes | None = None
        model_id = vmodel_id = ""
        try:
            metadata = context.invocation_metadata() or ()
            if not internal:
                self._check_method(method)
            ids = self._model_ids(method, data, metadata)
            timeout = context.time_remaining()
            passthrough = [(k, v) for k, v in metadata if k not in _DROP_HEADERS and not k.startswith(":")]
            if len(ids) == 1:
                requested, is_vmodel = ids[0]
                model_id = await self._resolve(requested, is_vmodel)
                if is_vmodel or model_id != requested:
                    vmodel_id = requested
                if self.payloads is not None and not internal:
                    response = await self._invoke_with_payloads(ids[0], model_id, method, data, passthrough, timeout)
                else:
                    response = await self._invoke(model_id, method, data, passthrough, timeout, internal,
                                                  vmodel_id)
                # Costs one more gRPC op (~0.1 ms CPU) than a bare hop; clients rely on it.
                await context.send_initial_metadata(((MODEL_ID, model_id),))
            else:
                response = await self._invoke_many(ids, method, data, passthrough, timeout, internal)
            return response
        except MeshError as e:
            code = e.code.name
            trailing = ((LOAD_FAILED, "1"),) if isinstance(e, LoadFailed) and internal else ()
            if trailing:
                context.set_trailing_metadata(trailing)
            await context.abort(e.code, e.message)
        except grpc.aio.AioRpcError as e:  # the runtime's or peer's own answer, passed through
            code = e.code().name
            await context.abort(e.code(), e.details() or "")
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            if not internal:
                api_ms, request_size, response_size = self._requests.api(method, code, model_id, vmodel_id)
                api_ms.observe((time.perf_counter() - started) * 1000)
                request_size.observe(len(data))
                if response is not None:
                    response_size.observe(len(response))

    async def _invoke_with_payloads(self, requested: tuple[str, bool | None], model_id: str, method: str, data: bytes,
                                    metadata: list, timeout: float | None) -> bytes:
        """`_invoke`, with copies of the request and the response handed to the processors."""
        payloads = self.payloads
        assert payloads is not None
        request_id = payloads.new_request_id()
        vmodel_id = requested[0] if requested[1] else ""
        payloads.submit(REQUEST_TYPE, request_id, model_id, vmodel_id, method, "OK", data)
        try:
            response = await self._invoke(model_id, method, data, metadata, timeout, False, vmodel_id)
        except MeshError as e:
            payloads.submit(RESPONSE_TYPE, request_id, model_id, vmodel_id, method, e.code.name, b"")
            raise
        except grpc.aio.AioRpcError as e:
            payloads.submit(RESPONSE_TYPE, request_id, model_id, vmodel_id, method, e.code().name, b"")
            raise
        payloads.submit(RESPONSE_TYPE, request_id, model_id, vmodel_id, method, "OK", response)
        return response

    # --- which model ----------------------------------------------------------------------

    def _check_method(self, method: str) -> None:
        """Refuse methods the mesh must not route; the verdict per method is computed once."""
        refusal = self._refusals.get(method, False)
        if refusal is False:
            refusal = self._refusal(method)
            if len(self._refusals) < 1000:  # bounded: method names come from clients
                self._refusals[method] = refusal
        if refusal is not None:
            raise MeshError(refusal, grpc.StatusCode.UNIMPLEMENTED)

    def _refusal(self, method: str) -> str | None:
        if method.startswith("/mmesh.ModelRuntime/"):
            return f"method {method} is not reachable through the mesh"
        dp = self.config.dataplane
        if not dp.allows(method):
            return f"method {method} is not enabled in the data-plane config"
        if not self.config.allow_any_method and method not in self._injection_paths \
                and dp.for_method(method) is None:
            return f"method {method} is not supported by the runtime"
        return None

    def _model_ids(self, method: str, data: bytes,
                   metadata: Sequence[tuple[str, str | bytes]]) -> list[tuple[str, bool | None]]:
        """(id, is_vmodel) pairs; is_vmodel None: a vmodel of that name if there is one, else a model."""
        rpc = self.config.dataplane.for_method(method)
        if rpc is not None and rpc.id_extraction_path:
            try:
                extracted = extract_string(data, rpc.id_extraction_path)
            except WireError as e:
                raise InvalidRequest(f"could not read the model id from the request: {e}") from None
            if extracted:  # an id in the body wins over the headers; empty falls back to them
                return [(extracted, rpc.vmodel_id)]
        ids: list[tuple[str, bool | None]] = []
        kinds = 0  # bit 1: a model id header, bit 2: a vmodel id header
        for key, value in metadata:
            if key in _ID_HEADERS:
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                if text:
                    is_vmodel = key.startswith(VMODEL_ID)
                    kinds |= 2 if is_vmodel else 1
                    ids.append((text, is_vmodel))
        if kinds == 3:
            raise InvalidRequest("must include only one of model id and vmodel id")
        if not ids and method in MODEL_NAME_PATHS:
            # ModelReady / ModelMetadata from a plain V2 client: the name field says which model.
            try:
                name = extract_string(data, MODEL_NAME_PATHS[method])
            except WireError as e:
                raise InvalidRequest(f"could not read the model name from the request: {e}") from None
            if name:
                return [(name, None)]
        if not ids:
            raise InvalidRequest("no model id: set the mm-model-id or mm-vmodel-id header"
                                 + (" or the request's model name field" if rpc is not None else ""))
        return ids

    async def _resolve(self, model_or_vmodel: str, is_vmodel: bool | None) -> str:
        if is_vmodel is None:
            vm = self.vmodels.get(model_or_vmodel)
            return vm.active_model if vm is not None and vm.active_model else model_or_vmodel
        if not is_vmodel:
            return model_or_vmodel
        vm = self.vmodels.get(model_or_vmodel) or await self.vmodels.fetch(model_or_vmodel)
        if vm is None or not vm.active_model:
            raise ModelNotFound(f"vmodel {model_or_vmodel} not found")
        return vm.active_model

    # --- routing ------------------------------------------------------------------------

    async def _invoke(self, model_id: str, method: str, data: bytes, metadata: list, timeout: float | None,
                      internal: bool, vmodel_id: str = "") -> bytes:
        record = self.models.get(model_id) or await self.models.fetch(model_id)
        if record is None:
            raise ModelNotFound(f"Model {model_id} not found")
        self.requests_by_model[model_id] = self.requests_by_model.get(model_id, 0) + 1
        tried: set[str] = set()
        runtime_down: RuntimeDown | None = None
        for _ in range(8):
            copy = self.cache.get(model_id)
            local = self.instance_id not in tried and copy is not None and (
                copy.state is CopyState.LOADED or internal or copy.state is CopyState.LOADING)
            if local or (internal and self.instance_id not in tried):
                try:
                    if copy is None or copy.state is not CopyState.LOADED:
                        copy = await self._load_here(model_id, record, vmodel_id)
                    return await self._call_local(copy, record, method, data, metadata, timeout, vmodel_id)
                except RuntimeDown as e:
                    if internal:
                        raise
                    # Our runtime is down: serve from a copy elsewhere if there is one.
                    runtime_down = e
                    tried.add(self.instance_id)
                    continue
            live = self.instances.items()
            holders = self._remote_holders(record, live, tried)
            if not holders and not tried:
                # A miss by our view: re-read the record before loading (another instance may
                # have just loaded it), so a watch lag does not cost a second copy.
                record = await self.models.read(model_id) or record
                holders = self._remote_holders(record, live, tried)
            if holders:
                peer = min(holders, key=lambda i: self._peer_inflight.get(i, 0))
                try:
                    return await self._call_peer(peer, live[peer], method, data, metadata, timeout, model_id)
                except _PeerFailed as e:
                    runtime_down = e.down or runtime_down
                    tried.add(peer)
                    record = self.models.get(model_id) or record
                    continue
            try:
                target = self._place(record, tried)
            except MeshError:
                if runtime_down is not None:
                    raise runtime_down from None
                raise
            if target == self.instance_id:
                try:
                    copy = await self._load_here(model_id, record, vmodel_id)
                except RuntimeDown as e:  # our runtime went down since placement: elsewhere
                    runtime_down = e
                    tried.add(self.instance_id)
                    continue
                except LoadFailed:
                    tried.add(self.instance_id)
                    record = self.models.get(model_id) or record
                    continue
                return await self._call_local(copy, record, method, data, metadata, timeout, vmodel_id)
            try:
                return await self._call_peer(target, live[target], method, data, metadata, timeout, model_id)
            except _PeerFailed as e:
                runtime_down = e.down or runtime_down
                tried.add(target)
                record = self.models.get(model_id) or record
        if runtime_down is not None:
            raise runtime_down
        raise self._final_failure(record, model_id)

    def _remote_holders(self, record: ModelRecord, live: dict[str, InstanceRecord], tried: set[str]) -> list[str]:
        holders = [i for i in record.instance_ids if i in live and i != self.instance_id and i not in tried
                   and not live[i].shutting_down]
        return holders or [i for i in record.loading_in if i in live and i != self.instance_id and i not in tried]

    def _place(self, record: ModelRecord, tried: set[str]) -> str:
        failures = record.failed_instances(now_ms(), self.config.load_failure_expiry_ms)
        if len(failures) >= MAX_FAILED_INSTANCES:
            raise self._final_failure(record, "")
        target = choose_instance(record.type, self.config.default_size, self.instances.items(),
                                 self.config.constraints, self.instance_id, exclude=failures | tried)
        if target is None:
            if failures or tried:
                raise self._final_failure(record, "")
            raise MeshError(self.config.constraints.no_instance_message(record.type), grpc.StatusCode.UNAVAILABLE)
        return target

    def _final_failure(self, record: ModelRecord, model_id: str) -> MeshError:
        msgs = [record.fail_msgs[i] for i in sorted(record.failed_in, key=record.failed_in.get, reverse=True)
                if i in record.fail_msgs]
        if msgs:
            return LoadFailed(msgs[0])
        return MeshError(f"no instance could serve model {model_id}", grpc.StatusCode.UNAVAILABLE)

    async def _load_here(self, model_id: str, record: ModelRecord, vmodel_id: str = "") -> LocalCopy:
        started = time.perf_counter()
        copy = await self.loader.ensure_local(model_id, record)
        self.metrics.cache_miss_ms.observe((time.perf_counter() - started) * 1000, model_id, vmodel_id)
        return copy

    async def _call_runtime(self, method: str, payload: bytes, metadata: list, timeout: float | None,
                            model_id: str, vmodel_id: str) -> bytes:
        """The call into the runtime, timed as `invoke_model`."""
        started = time.perf_counter()
        code = "OK"
        try:
            return await self.serving.call(method, payload, [*metadata, (MODEL_ID, model_id)], timeout)
        except grpc.aio.AioRpcError as e:
            code = e.code().name
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            self._requests.invoke(method, code, model_id, vmodel_id).observe((time.perf_counter() - started) * 1000)

    async def _call_local(self, copy: LocalCopy, record: ModelRecord, method: str, data: bytes, metadata: list,
                          timeout: float | None, vmodel_id: str = "") -> bytes:
        try:
            return await self._invoke_copy(copy, method, data, metadata, timeout, vmodel_id)
        except _RuntimeLostModel:
            pass
        # Outside the copy's in-flight scope: unloading or forgetting it must see it idle.
        if not self.loader.runtime_reachable:
            # No reload while the runtime is down (it would fail and count against the
            # model): drop the copy; the caller serves from another instance.
            log.warning("runtime does not have a model the mesh thinks is loaded and is "
                        "unreachable; not reloading here", model_id=copy.model_id)
            await self.loader.forget(copy)
            raise RuntimeDown(f"ModelRuntime UNAVAILABLE: runtime unreachable, model {copy.model_id} not loaded")
        # The runtime lost the model (restart?): reload it once and retry once.
        log.warning("runtime does not have a model the mesh thinks is loaded; reloading", model_id=copy.model_id)
        await self.loader.unload(copy, "missing in runtime")
        fresh = await self._load_here(copy.model_id, record, vmodel_id)
        try:
            return await self._invoke_copy(fresh, method, data, metadata, timeout, vmodel_id)
        except _RuntimeLostModel as lost:  # lost again right after the reload: report as the runtime said
            if lost.error.code() is grpc.StatusCode.UNAVAILABLE:
                raise RuntimeDown(f"ModelRuntime UNAVAILABLE: {lost.error.details()}") from None
            raise lost.error from None

    async def _invoke_copy(self, copy: LocalCopy, method: str, data: bytes, metadata: list, timeout: float | None,
                           vmodel_id: str) -> bytes:
        """One call into the runtime for a loaded copy, counted in flight on it while it runs."""
        path = self._injection_paths.get(method)
        payload = inject_string(data, path, copy.model_id) if path else data
        copy.inflight += 1
        self.cache.touch(copy)
        if self.max_inflight_per_copy and copy.inflight > self.max_inflight_per_copy:
            self.on_overloaded(copy.model_id)
        try:
            if self.limit_model_concurrency and copy.limiter is not None:
                queued = time.perf_counter()
                async with copy.limiter:
                    self.metrics.req_queue_delay.observe((time.perf_counter() - queued) * 1000, copy.model_id,
                                                         vmodel_id)
                    return await self._call_runtime(method, payload, metadata, timeout, copy.model_id, vmodel_id)
            return await self._call_runtime(method, payload, metadata, timeout, copy.model_id, vmodel_id)
        except grpc.aio.AioRpcError as e:
            if runtime_said_not_found(e):
                raise _RuntimeLostModel(e) from None
            if e.code() is grpc.StatusCode.UNAVAILABLE:
                raise RuntimeDown(f"ModelRuntime UNAVAILABLE: {e.details()}") from None
            raise
        finally:
            copy.inflight -= 1

    async def _call_peer(self, peer_id: str, peer: InstanceRecord, method: str, data: bytes, metadata: list,
                         timeout: float | None, model_id: str) -> bytes:
        self._peer_inflight[peer_id] = self._peer_inflight.get(peer_id, 0) + 1
        call = self.peers.get(peer.endpoint).call(
            method, data, [*metadata, (MODEL_ID, model_id), (INTERNAL, self.instance_id)], timeout)
        try:
            return await call
        except grpc.aio.AioRpcError as e:
            trailing = e.trailing_metadata() or ()
            if any(k == LOAD_FAILED for k, _ in trailing):
                raise _PeerFailed(None) from None
            details = e.details() or ""
            if e.code() is grpc.StatusCode.UNAVAILABLE or details.startswith("ModelRuntime UNAVAILABLE"):
                # The peer, or the runtime behind it, is down: another copy may serve.
                log.warning("peer could not serve", peer=peer_id, error=details)
                raise _PeerFailed(RuntimeDown(details if details.startswith("ModelRuntime") else
                                              f"ModelRuntime UNAVAILABLE: peer {peer_id}: {details}")) from None
            raise
        finally:
            self._peer_inflight[peer_id] -= 1

    async def _invoke_many(self, ids: list[tuple[str, bool | None]], method: str, data: bytes, metadata: list,
                           timeout: float | None, internal: bool) -> bytes:
        """Send one request to several models; concatenated raw responses parse as a merge."""
        sem = asyncio.Semaphore(self.config.multi_parallelism)

        async def one(model_or_vmodel: str, is_vmodel: bool | None) -> bytes | None:
            try:
                model_id = await self._resolve(model_or_vmodel, is_vmodel)
                async with sem:
                    return await self._invoke(model_id, method, data, metadata, timeout, internal)
            except ModelNotFound:
                return None

        results = await asyncio.gather(*(one(i, v) for i, v in ids))
        found = [r for r in results if r is not None]
        if not found:
            raise ModelNotFound(f"none of the models {[i for i, _ in ids]} found")
        return b"".join(found)


class _PeerFailed(Exception):
    """The peer could not serve (unreachable, or its load failed): try elsewhere."""

    def __init__(self, down: RuntimeDown | None) -> None:
        super().__init__()
        self.down = down
