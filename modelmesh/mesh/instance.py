"""One mesh instance: composes the tables, the local cache, the loader, the router, the API
and the gRPC servers, and owns the instance's lifecycle (join, publish, hand-off, leave)."""

from __future__ import annotations

import asyncio
import time

import grpc
from prometheus_client import CollectorRegistry

from modelmesh import __version__
from modelmesh.config.mesh import MeshSettings
from modelmesh.kv import KVStore, Lease, mesh_key_prefix, open_store
from modelmesh.mesh.api import ModelMeshApi
from modelmesh.mesh.cache import CopyState, LocalCache, now_ms
from modelmesh.mesh.channels import PeerChannels, RawChannel
from modelmesh.mesh.constraints import TypeConstraints
from modelmesh.mesh.dataplane import DataPlaneConfig
from modelmesh.mesh.errors import MeshError
from modelmesh.mesh.janitor import Janitor
from modelmesh.mesh.loader import ModelLoader
from modelmesh.mesh.metrics import MeshMetrics
from modelmesh.mesh.payloads import PayloadProcessors
from modelmesh.mesh.placement import choose_instance, eligible_instances
from modelmesh.mesh.records import NO_INSTANCE, InstanceRecord, ModelRecord, VModelRecord
from modelmesh.mesh.router import MAX_FAILED_INSTANCES, Router, RoutingConfig
from modelmesh.mesh.runtime_client import RuntimeClient, runtime_target
from modelmesh.mesh.server import bind, build_external_server, build_internal_server, server_credentials
from modelmesh.mesh.tables import Table
from modelmesh.mesh.transitions import VModelTransitions
from modelmesh.mesh.v2_server import V2ServerRpcs
from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_mesh_pb2 as pb

log = get_logger("modelmesh.mesh")

HANDOFF_RECENT_MS = 3600 * 1000  # on shutdown, models used in the last hour are handed off


class MeshInstance:
    def __init__(self, settings: MeshSettings, registry: CollectorRegistry, store: KVStore | None = None) -> None:
        self.settings = settings
        self.id = settings.instance_id
        self.metrics = MeshMetrics(registry)
        self.registry = registry
        self.payloads: PayloadProcessors | None = None
        self._given_store = store
        self.store: KVStore | None = store
        self.constraints = TypeConstraints.load(settings.type_constraints, settings.type_constraints_path)
        self.dataplane = DataPlaneConfig.load(settings.dataplane_config, settings.dataplane_config_path)
        self.lease: Lease | None = None
        self.ready = False
        self.shutting_down = False
        self.runtime_healthy = True
        self._servers: list[grpc.aio.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self.started_at = now_ms()
        self.grpc_port = settings.grpc_port
        self.internal_port = settings.internal_grpc_port

    # --- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if self.store is None:
            self.store = await open_store(s.kv_store, None)
        prefix = mesh_key_prefix(getattr(self.store, "root_prefix", ""), s.kv_prefix, s.service_name)
        self.prefix = prefix
        self.models: Table[ModelRecord] = Table(self.store, prefix + "registry/", ModelRecord.from_json, "registry")
        # vmodel writes wait for the watch: the vmodel -> model index (VModelTransitions) is
        # derived from it and decides what an auto-deleted model still serves.
        self.vmodels: Table[VModelRecord] = Table(self.store, prefix + "vmodels/", VModelRecord.from_json, "vmodels",
                                                  echo_writes=True)
        self.instances: Table[InstanceRecord] = Table(self.store, prefix + "instances/", InstanceRecord.from_json,
                                                      "instances")
        for table in (self.models, self.vmodels, self.instances):
            await table.start(timeout_s=60)

        self.runtime = RuntimeClient(runtime_target(s.runtime_grpc_port, s.runtime_grpc_socket), s.max_msg_size)
        status = await self.runtime.wait_ready(s.runtime_poll_s, s.runtime_startup_timeout_s)
        self.runtime_status = status
        serving = runtime_target(s.serving_grpc_port or s.runtime_grpc_port,
                                 s.serving_grpc_socket or (s.runtime_grpc_socket if not s.serving_grpc_port else ""))
        self.serving = RawChannel(serving, s.max_msg_size)
        self.default_size = status.defaultModelSizeInBytes or 1_000_000
        self.load_timeout_s = (status.modelLoadingTimeoutMs or 90000) / 1000
        self.load_wait_timeout_s = self.load_timeout_s * MAX_FAILED_INSTANCES + 30
        self.cache = LocalCache(status.capacityInBytes, s.min_churn_age_ms)
        self.metrics.capacity_bytes.set(status.capacityInBytes)
        self.peers = PeerChannels(s.max_msg_size)
        self.transitions = VModelTransitions(self)
        self.loader = ModelLoader(
            self.id, self.cache, self.runtime, self.models, self.metrics,
            load_timeout_s=self.load_timeout_s, max_loading=status.maxLoadingConcurrency or 1,
            default_size=self.default_size, on_loaded=self.transitions.model_loaded,
            on_failed=self.transitions.model_failed)
        injection = {("/" + k.lstrip("/")): tuple(v.idInjectionPath) for k, v in status.methodInfos.items()
                     if v.idInjectionPath}
        self.router = Router(self.id, self.cache, self.loader, self.models, self.vmodels, self.instances,
                             self.serving, self.peers, RoutingConfig(
                                 dataplane=self.dataplane, constraints=self.constraints,
                                 allow_any_method=status.allowAnyMethod or not status.methodInfos,
                                 injection_paths=injection, load_failure_expiry_ms=s.load_failure_expiry_ms,
                                 default_size=self.default_size, multi_parallelism=s.multi_parallelism),
                             self.metrics)
        if s.payload_processors:
            self.payloads = PayloadProcessors(s.payload_processors, self.id, self.registry)
            await self.payloads.start()
            self.router.payloads = self.payloads
        self.router.max_inflight_per_copy = s.max_inflight_per_copy
        self.router.limit_model_concurrency = status.limitModelConcurrency
        self.router.on_overloaded = self._copy_overloaded
        self._scaling: set[str] = set()
        self.api = ModelMeshApi(self)
        self.models.on_change(self._registry_changed)
        self.instances.on_change(self._instances_changed)

        server_rpcs = V2ServerRpcs(ready=lambda: self.ready and self.runtime_healthy and not self.shutting_down)
        external = build_external_server(self.api, self.router, s.max_msg_size, server_rpcs)
        creds = server_credentials(s.tls_key_cert_path, s.tls_private_key_path, s.tls_client_auth,
                                   s.tls_trust_cert_path)
        self.grpc_port = bind(external, "0.0.0.0", s.grpc_port, creds)
        internal = build_internal_server(self.router, s.max_msg_size, self._internal_ensure_loaded)
        self.internal_port = bind(internal, "0.0.0.0", s.internal_grpc_port)
        await internal.start()
        self._servers = [internal]

        self.lease = await self.store.grant_lease(self.settings.lease_ttl_s, on_lost=self._lease_lost)
        await self.publish()
        await external.start()
        self._servers.append(external)
        self.janitor = Janitor(self)
        self._spawn(self.janitor.run())
        self.ready = True
        log.info("mesh instance ready", instance=self.id, grpc_port=self.grpc_port, internal_port=self.internal_port,
                 capacity=status.capacityInBytes, prefix=prefix)

    # --- instance record -----------------------------------------------------------------

    def instance_record(self) -> InstanceRecord:
        s = self.settings
        return InstanceRecord(
            endpoint=f"{s.pod_ip}:{self.internal_port}", capacity_bytes=self.cache.capacity,
            used_bytes=self.cache.used, model_count=len(self.cache), lru_time=self.cache.lru_time(),
            loading_threads=self.runtime_status.maxLoadingConcurrency or 1,
            loading_in_progress=self.cache.loading_count, rpm=self.janitor.rpm if hasattr(self, "janitor") else 0,
            # An instance whose runtime is unreachable is, for placement, leaving.
            shutting_down=self.shutting_down or not self.runtime_healthy, start_time=self.started_at, version=__version__,
            location=s.location or s.pod_ip, zone=s.zone, labels=tuple(sorted(s.labels)))

    async def publish(self) -> None:
        record = self.instance_record()
        if self.instances.get(self.id) != record and self.lease is not None and not self.lease.lost:
            await self.instances.put(self.id, record, self.lease)
        m = self.metrics
        m.used_bytes.set(self.cache.used)
        m.used_bps.set(int(self.cache.used * 10000 / self.cache.capacity) if self.cache.capacity else 0)
        m.models_total.set(len(self.cache))
        m.models_loaded.set(len(self.cache.loaded_ids()))
        m.models_managed.set(len(self.models))
        lru = self.cache.lru_time()
        m.lru_seconds.set(lru / 1000)
        m.lru_age_seconds.set((now_ms() - lru) / 1000 if lru else 0)

    async def _lease_lost(self) -> None:
        if self.shutting_down:
            return
        log.warning("instance lease lost; re-joining", instance=self.id)
        self._spawn(self._rejoin())

    async def _rejoin(self) -> None:
        delay = 0.2
        while not self.shutting_down:
            try:
                self.lease = await self.store.grant_lease(self.settings.lease_ttl_s, on_lost=self._lease_lost)
                await self.instances.put(self.id, self.instance_record(), self.lease)
                await self.janitor.reconcile_own_copies()
                log.info("instance re-joined", instance=self.id)
                return
            except Exception as e:  # noqa: BLE001 - the store may still be down
                log.warning("re-join failed; retrying", error=str(e))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    # --- registry reactions ----------------------------------------------------------------

    async def _registry_changed(self, changes) -> None:
        for c in changes:
            if c.new is None:  # unregistered: drop our copy
                copy = self.cache.get(c.id)
                if copy is not None and copy.state is not CopyState.UNLOADING:
                    self._spawn(self._unload_quietly(copy, "unregistered"))

    async def _unload_quietly(self, copy, reason: str) -> None:
        if copy.state is CopyState.LOADING:
            try:
                await asyncio.shield(copy.ready)
            except Exception:  # noqa: BLE001 - a failed load leaves nothing to unload
                return
        await self.loader.unload(copy, reason)

    async def _instances_changed(self, changes) -> None:
        # New instances may make pending loads possible (e.g. a runtime of the right type joined).
        if any(c.old is None and c.new is not None for c in changes):
            self._spawn(self.janitor.retry_unplaceable())

    # --- placement of loads without a request ----------------------------------------------

    def live_holders(self, record: ModelRecord) -> list[str]:
        live = self.instances.items()
        return [i for i in (*record.instance_ids, *record.loading_in) if i in live]

    async def ensure_loaded_somewhere(self, model_id: str, exclude: frozenset[str] = frozenset()) -> None:
        """Start a load if no live instance holds or is loading the model."""
        record = self.models.get(model_id)
        if record is None or self.live_holders(record):
            return
        live = self.instances.items()
        failures = record.failed_instances(now_ms(), self.settings.load_failure_expiry_ms)
        if len(failures) >= MAX_FAILED_INSTANCES:
            await self.transitions.model_failed(model_id)
            return
        target = choose_instance(record.type, self.default_size, live, self.constraints, self.id,
                                 exclude=failures | exclude)
        if target is None:
            if not eligible_instances(record.type, live, self.constraints):
                await self._record_unplaceable(model_id)
            await self.transitions.model_failed(model_id)
            return
        # Claim the load for the chosen instance before answering (one write, which also
        # clears a "no instance" failure), so a status read right after loadNow/setVModel
        # says LOADING, not NOT_LOADED.
        await self.models.update(model_id, lambda r: r and (
            r if target in r.loading_in and NO_INSTANCE not in r.failed_in
            else r.without_failure_on(NO_INSTANCE).loading_on(target, now_ms())))
        if target == self.id:
            self._spawn(self._load_in_background(model_id))
        else:
            self._spawn(self._ask_peer_to_load(target, model_id))

    async def _record_unplaceable(self, model_id: str) -> None:
        message = self.constraints.no_instance_message((self.models.get(model_id) or ModelRecord("")).type)

        def change(r: ModelRecord | None) -> ModelRecord | None:
            if r is None or r.fail_msgs.get(NO_INSTANCE) == message:
                return r
            return r.failed_on(NO_INSTANCE, now_ms(), message)

        await self.models.update(model_id, change)

    async def _load_in_background(self, model_id: str) -> None:
        record = self.models.get(model_id)
        if record is None:
            return
        try:
            await self.loader.ensure_local(model_id, record)
        except MeshError as e:
            log.info("background load did not succeed", model_id=model_id, error=e.message)

    async def _ask_peer_to_load(self, peer_id: str, model_id: str) -> None:
        peer = self.instances.get(peer_id)
        if peer is None:
            return
        try:
            channel = self.peers.get(peer.endpoint).channel
            call = channel.unary_unary("/mmesh.ModelMesh/ensureLoaded",
                                       request_serializer=pb.EnsureLoadedRequest.SerializeToString,
                                       response_deserializer=pb.ModelStatusInfo.FromString)
            await call(pb.EnsureLoadedRequest(modelId=model_id), timeout=10)
        except grpc.aio.AioRpcError as e:
            log.warning("peer did not take the load; loading elsewhere", peer=peer_id, model_id=model_id,
                        error=e.details())
            await self.ensure_loaded_somewhere(model_id, exclude=frozenset({peer_id}))

    async def _internal_ensure_loaded(self, request: pb.EnsureLoadedRequest) -> pb.ModelStatusInfo:
        """A peer chose this instance for a load."""
        if self.models.get(request.modelId) is None:
            return pb.ModelStatusInfo(status=pb.ModelStatusInfo.NOT_FOUND)
        self._spawn(self._load_in_background(request.modelId))
        return pb.ModelStatusInfo(status=pb.ModelStatusInfo.LOADING)

    def _copy_overloaded(self, model_id: str) -> None:
        """More requests in flight on our copy than one copy should take: add a copy
        elsewhere if there is only one (once at a time per model)."""
        if model_id in self._scaling or self.shutting_down:
            return
        record = self.models.get(model_id)
        if record is None or len(self.live_holders(record)) >= 2:
            return
        self._scaling.add(model_id)

        async def scale() -> None:
            try:
                await self.ensure_loaded_somewhere_else(model_id)
            finally:
                self._scaling.discard(model_id)

        self._spawn(scale())

    # --- vmodel helpers -------------------------------------------------------------------

    def vmodels_referring(self, model_id: str) -> set[str]:
        return self.transitions.referring(model_id)

    async def delete_if_orphaned(self, model_id: str) -> None:
        record = self.models.get(model_id)
        if record is not None and record.auto_delete and not self.vmodels_referring(model_id):
            await self.models.delete(model_id)

    # --- stop ----------------------------------------------------------------------------

    async def close_partial(self) -> None:
        """Undo a start-up that did not finish (e.g. stopped while waiting for the runtime)."""
        self.shutting_down = True
        if self.payloads is not None:
            await self.payloads.close()
        for server in self._servers:
            await server.stop(grace=0)
        for name in ("models", "vmodels", "instances"):
            table = getattr(self, name, None)
            if table is not None:
                await table.close()
        for name in ("runtime", "serving"):
            client = getattr(self, name, None)
            if client is not None:
                await client.close()
        if self.lease is not None:
            try:
                await self.lease.revoke()
            except Exception:  # noqa: BLE001
                pass
        if self._given_store is None and self.store is not None:
            await self.store.close()

    async def stop(self, timeout_s: float) -> None:
        """Graceful: stop taking loads, hand off models in use, leave the mesh."""
        if not self.ready and not self.shutting_down:
            await self.close_partial()
            return
        if self.shutting_down:
            return
        self.shutting_down = True
        self.ready = False
        deadline = time.monotonic() + timeout_s
        try:
            if self.lease is not None and not self.lease.lost:
                self.loader.accepting = False
                await self.publish()
                await self._hand_off(deadline)
        except Exception as e:  # noqa: BLE001 - shutdown goes on
            log.warning("hand-off incomplete", error=str(e))
        for server in self._servers:
            await server.stop(grace=max(0.5, min(5.0, deadline - time.monotonic())))
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.loader.close()
        # Leave the registry truthful: our copies go away with us.
        for copy in self.cache.copies():
            try:
                await asyncio.wait_for(self.loader.unload(copy, "shutdown"),
                                       max(0.5, deadline - time.monotonic()))
            except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001
                log.warning("unload at shutdown failed", model_id=copy.model_id, error=str(e))
        if self.lease is not None:
            try:
                await self.lease.revoke()
            except Exception:  # noqa: BLE001 - the lease expires anyway
                pass
        for table in (self.models, self.vmodels, self.instances):
            await table.close()
        if self.payloads is not None:
            await self.payloads.close()
        await self.peers.close()
        await self.serving.close()
        await self.runtime.close()
        if self._given_store is None and self.store is not None:
            await self.store.close()
        log.info("mesh instance stopped", instance=self.id)

    async def _hand_off(self, deadline: float) -> None:
        now = now_ms()
        recent = [c.model_id for c in self.cache.copies() if c.serving and now - c.last_used < HANDOFF_RECENT_MS]
        pending = []
        for model_id in recent:
            record = self.models.get(model_id)
            if record is None:
                continue
            others = [i for i in self.live_holders(record) if i != self.id]
            if not others and await self.ensure_loaded_somewhere_else(model_id):
                pending.append(model_id)
        for model_id in pending:
            remaining = deadline - time.monotonic() - 2
            if remaining <= 0:
                break
            await self.models.wait_for(
                model_id, lambda r: r is None or any(i != self.id for i in r.instance_ids
                                                     if i in self.instances.items()), remaining)
        log.info("hand-off done", models=len(pending))

    async def ensure_loaded_somewhere_else(self, model_id: str) -> bool:
        """Ask another instance to load a copy; False when no other instance can."""
        record = self.models.get(model_id)
        if record is None:
            return False
        target = choose_instance(record.type, self.default_size, self.instances.items(), self.constraints, self.id,
                                 exclude={self.id})
        if target is None:
            return False
        await self._ask_peer_to_load(target, model_id)
        return True

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
