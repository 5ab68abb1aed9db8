"""One mesh instance: builds the services in dependency order, passing each the
collaborators it needs, and owns the start and stop order. No other module reaches back
into it.

    tables -> runtime handshake -> ClusterView, ModelLoader, VModelTransitions,
    LoadCoordinator, Router, API, RuntimeHealth, RequestRates, Membership, Janitor
    -> servers -> join (lease + record) -> janitor loop

Each service subscribes to the watches it reacts to in its own constructor, so no callback
can fire before the object it needs exists. Leaving (stop taking loads, hand off, exit) is
`drain` + `stop` here, and `shutdown.hand_off`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry

from modelmesh import __version__
from modelmesh.config.mesh import MeshSettings
from modelmesh.kv import KVStore, mesh_key_prefix, open_store
from modelmesh.mesh.api import ModelMeshApi
from modelmesh.mesh.cache import LocalCache, now_ms, unload_reserve_bytes
from modelmesh.mesh.channels import PeerChannels, RawChannel
from modelmesh.mesh.cluster import MAX_FAILED_INSTANCES, ClusterView
from modelmesh.mesh.coordinator import LoadCoordinator
from modelmesh.mesh.health import RuntimeHealth
from modelmesh.mesh.janitor import Janitor, JanitorSettings
from modelmesh.mesh.loader import ModelLoader
from modelmesh.mesh.membership import Membership
from modelmesh.mesh.metrics import MeshMetrics
from modelmesh.mesh.payloads import PayloadProcessors
from modelmesh.mesh.rates import RequestRates
from modelmesh.mesh.records import InstanceRecord, ModelRecord, VModelRecord
from modelmesh.mesh.router import Router, RoutingConfig
from modelmesh.mesh.runtime_client import RuntimeClient, runtime_target
from modelmesh.mesh.server import (bind, build_external_server, build_internal_server, internal_server_credentials,
                                   server_credentials)
from modelmesh.mesh.shutdown import hand_off
from modelmesh.mesh.tables import Table
from modelmesh.mesh.tasks import TaskOwner
from modelmesh.mesh.tc_config import TcConfig
from modelmesh.mesh.transitions import VModelTransitions
from modelmesh.mesh.v2_server import V2ServerRpcs
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh")


@dataclass
class _Services:
    """What a started instance is made of (built together by MeshInstance._build)."""

    models: Table[ModelRecord]
    cache: LocalCache
    cluster: ClusterView
    loader: ModelLoader
    transitions: VModelTransitions
    coordinator: LoadCoordinator
    router: Router
    api: ModelMeshApi
    health: RuntimeHealth
    rates: RequestRates
    membership: Membership
    janitor: Janitor


class MeshInstance:
    def __init__(self, settings: MeshSettings, registry: CollectorRegistry, store: KVStore | None = None) -> None:
        self.settings = settings
        self.id = settings.instance_id
        self.metrics = MeshMetrics(registry, per_model=settings.metrics.per_model_metrics,
                                   fq_names=settings.metrics.fq_names)
        self.registry = registry
        self._given_store = store
        self.store: KVStore | None = store
        self.tc_config = TcConfig(settings)  # raises SettingsError naming a bad variable
        self.constraints = self.tc_config.constraints  # updated in place when tc-config changes
        self.tasks = TaskOwner(f"mesh-{self.id}")
        self.ready = False
        self.stopping = False
        self.started_at = now_ms()
        self.grpc_port = settings.grpc_port
        self.internal_port = settings.internal_grpc_port
        self.payloads: PayloadProcessors | None = None
        self._tables: list[Table] = []
        self._servers: list[grpc.aio.Server] = []
        self._clients: list[RuntimeClient | RawChannel | PeerChannels] = []
        self.services: _Services | None = None

    @property
    def runtime_healthy(self) -> bool:
        return self.services is None or self.services.health.healthy

    # --- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if self.store is None:
            self.store = await open_store(s.kv_store, None)
        prefix = mesh_key_prefix(getattr(self.store, "root_prefix", ""), s.kv_prefix, s.service_name)
        models: Table[ModelRecord] = Table(self.store, prefix + "registry/", ModelRecord.from_json, "registry")
        # vmodel writes wait for the watch: the vmodel -> model index (VModelTransitions) is
        # derived from it and decides what an auto-deleted model still serves.
        vmodels: Table[VModelRecord] = Table(self.store, prefix + "vmodels/", VModelRecord.from_json, "vmodels",
                                             echo_writes=True)
        instances: Table[InstanceRecord] = Table(self.store, prefix + "instances/", InstanceRecord.from_json,
                                                 "instances")
        self._tables = [models, vmodels, instances]
        for table in self._tables:
            await table.start(timeout_s=60)

        runtime = RuntimeClient(runtime_target(s.runtime_grpc_port, s.runtime_grpc_socket), s.max_msg_size)
        self._clients.append(runtime)
        status = await runtime.wait_ready(s.runtime_poll_s, s.runtime_startup_timeout_s)
        serving = RawChannel(runtime_target(
            s.serving_grpc_port or s.runtime_grpc_port,
            s.serving_grpc_socket or (s.runtime_grpc_socket if not s.serving_grpc_port else "")), s.max_msg_size)
        tls = s.server_tls()  # None: plaintext on both ports, as without TLS settings
        peers = PeerChannels(s.max_msg_size, tls)
        self._clients += [serving, peers]
        if s.payload_processors:
            self.payloads = PayloadProcessors(s.payload_processors, self.id, self.registry)
            await self.payloads.start()

        self.services = self._build(prefix, models, vmodels, instances, runtime, serving, peers, status)
        sv = self.services

        requests = self.metrics.requests
        server_rpcs = V2ServerRpcs(
            ready=lambda: self.ready and self.runtime_healthy and not self.stopping,
            observe=lambda method, code, started: requests.api_time(method, code).observe(
                (time.perf_counter() - started) * 1000))
        external = build_external_server(sv.api, sv.router, s.max_msg_size, server_rpcs)
        self.grpc_port = bind(external, s.listen_host, s.grpc_port, server_credentials(tls))
        internal = build_internal_server(sv.router, s.max_msg_size, sv.coordinator.accept_load_request)
        self.internal_port = bind(internal, s.listen_host, s.internal_grpc_port, internal_server_credentials(tls))
        await internal.start()
        self._servers = [internal]

        await sv.membership.join()
        await external.start()
        self._servers.append(external)
        self.tasks.spawn(sv.janitor.run(), "janitor")
        self.tasks.spawn(self.tc_config.watch(), "tc-config")
        self.ready = True
        log.info("mesh instance ready", instance=self.id, grpc_port=self.grpc_port, internal_port=self.internal_port,
                 capacity=status.capacityInBytes, prefix=prefix)

    def _build(self, prefix: str, models: Table[ModelRecord], vmodels: Table[VModelRecord],
               instances: Table[InstanceRecord], runtime: RuntimeClient, serving: RawChannel, peers: PeerChannels,
               status) -> _Services:
        """Every service, each given what it needs, in dependency order."""
        s = self.settings
        default_size = status.defaultModelSizeInBytes or 1_000_000
        load_timeout_s = (status.modelLoadingTimeoutMs or 90000) / 1000
        cache = LocalCache(status.capacityInBytes, s.min_churn_age_ms, unload_reserve_bytes(
            status.capacityInBytes, status.maxLoadingConcurrency or 1, default_size))
        cluster = ClusterView(self.id, models, instances, self.constraints, default_size=default_size,
                              failure_expiry_ms=s.load_failure_expiry_ms)
        transitions = VModelTransitions(models, vmodels, cluster)
        coordinator: LoadCoordinator | None = None

        async def load_failed(model_id: str, runtime_down: bool) -> None:
            # The loader reports to the coordinator, which is built on top of the loader.
            if coordinator is not None:
                await coordinator.after_failure(model_id, runtime_down)

        loader = ModelLoader(
            self.id, cache, runtime, models, self.metrics, self.tasks,
            load_timeout_s=load_timeout_s, max_loading=status.maxLoadingConcurrency or 1,
            default_size=default_size, on_loaded=transitions.model_loaded, on_failed=load_failed)
        models.on_change(loader.registry_changed)
        coordinator = LoadCoordinator(
            self.id, cluster, models, loader, peers, self.tasks,
            on_failed_for_good=transitions.model_failed_for_good)
        injection = {("/" + k.lstrip("/")): tuple(v.idInjectionPath) for k, v in status.methodInfos.items()
                     if v.idInjectionPath}
        router = Router(self.id, cache, loader, models, vmodels, instances, serving, peers, RoutingConfig(
            dataplane=self.tc_config.dataplane, constraints=self.constraints,
            allow_any_method=status.allowAnyMethod or not status.methodInfos,
            injection_paths=injection, load_failure_expiry_ms=s.load_failure_expiry_ms,
            default_size=default_size, multi_parallelism=s.multi_parallelism), self.metrics)
        router.payloads = self.payloads
        router.max_inflight_per_copy = s.max_inflight_per_copy
        router.limit_model_concurrency = status.limitModelConcurrency
        router.on_overloaded = coordinator.copy_overloaded
        self.tc_config.on_dataplane_change(router.set_dataplane)
        # Types a new tc-config accepts may make models placeable that were not.
        self.tc_config.on_constraints_change(
            lambda: self.tasks.spawn(coordinator.retry_unplaceable(), "retry-unplaceable"))
        api = ModelMeshApi(models, vmodels, cluster, coordinator, transitions, self.metrics,
                           default_vmodel_owner=s.default_vmodel_owner,
                           load_wait_timeout_s=load_timeout_s * MAX_FAILED_INSTANCES + 30)
        health = RuntimeHealth(runtime, serving, cache, loader, poll_s=s.runtime_poll_s,
                               startup_timeout_s=s.runtime_startup_timeout_s)
        rates = RequestRates(router.take_request_counts)
        loading_threads = status.maxLoadingConcurrency or 1

        def describe() -> InstanceRecord:
            return InstanceRecord(
                endpoint=f"{s.pod_ip}:{self.internal_port}", capacity_bytes=cache.published_capacity,
                used_bytes=cache.models_used,
                model_count=len(cache), lru_time=cache.lru_time(), loading_threads=loading_threads,
                loading_in_progress=cache.loading_count, rpm=rates.rpm,
                # An instance whose runtime is unreachable is, for placement, leaving.
                shutting_down=not health.healthy, start_time=self.started_at, version=__version__,
                location=s.location or s.pod_ip, zone=s.zone, labels=tuple(sorted(s.labels)))

        assert self.store is not None
        membership = Membership(self.id, self.store, instances, self.tasks, lease_ttl_s=s.lease_ttl_s,
                                leader_key=prefix + "leaderLatch/leader", snapshot=describe,
                                on_rejoined=loader.reconcile_records)
        janitor = Janitor(
            self.id, JanitorSettings(period_s=s.janitor_freq_secs, scaleup_rpm_threshold=s.scaleup_rpm_threshold,
                                     reap_delay_ms=s.reap_delay_ms),
            cache=cache, models=models, instances=instances, cluster=cluster, loader=loader,
            coordinator=coordinator, transitions=transitions, membership=membership, health=health, rates=rates,
            peers=peers, tasks=self.tasks)
        # Gauges read the cache and the registry view when scraped: never stale.
        self.metrics.track_instance(cache)
        self.metrics.track_cluster(cluster.model_counts)
        return _Services(models, cache, cluster, loader, transitions, coordinator, router, api, health, rates,
                         membership, janitor)

    # --- leaving ---------------------------------------------------------------------------

    async def drain(self, deadline: float) -> None:
        """Stop taking loads, tell the mesh, hand off the models in use (until `deadline`, a
        time.monotonic() value). Safe to call more than once."""
        sv = self.services
        if sv is None or not sv.membership.joined:
            return
        sv.loader.stop_accepting()
        sv.coordinator.stop_accepting()
        if sv.membership.leaving:
            return
        await sv.membership.announce_leaving()
        await hand_off(self.id, sv.cache, sv.models, sv.cluster, sv.coordinator, deadline)

    async def stop(self, timeout_s: float) -> None:
        """Graceful: stop taking loads, hand off models in use, leave the mesh."""
        if self.stopping:
            return
        self.stopping = True
        started = self.ready
        self.ready = False
        deadline = time.monotonic() + timeout_s
        sv = self.services
        if started and sv is not None:
            try:
                await self.drain(deadline)
            except Exception as e:  # noqa: BLE001 - shutdown goes on
                log.warning("hand-off incomplete", error=str(e))
        for server in self._servers:
            await server.stop(grace=max(0.5, min(5.0, deadline - time.monotonic())) if started else 0)
        await self.tasks.close()
        if sv is not None:
            await sv.loader.close()
            # Leave the registry truthful: our copies go away with us.
            for copy in sv.cache.copies():
                try:
                    await asyncio.wait_for(sv.loader.unload(copy, "shutdown"),
                                           max(0.5, deadline - time.monotonic()))
                except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001
                    log.warning("unload at shutdown failed", model_id=copy.model_id, error=str(e))
            await sv.membership.leave()
        for table in self._tables:
            await table.close()
        if self.payloads is not None:
            await self.payloads.close()
        for client in self._clients:
            await client.close()
        if self._given_store is None and self.store is not None:
            await self.store.close()
        log.info("mesh instance stopped", instance=self.id)

    async def close_partial(self) -> None:
        """Undo a start-up that did not finish (e.g. stopped while waiting for the runtime)."""
        await self.stop(0)
