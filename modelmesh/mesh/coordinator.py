"""Cluster-wide load decisions: make sure some live instance holds or loads a model (claim
the load in its record, then load here or ask the chosen peer), retry on another instance
after a failure, record models no instance can take, add a copy elsewhere.

Every path that loads without a request in hand (registerModel/ensureLoaded/setVModel, a
failed load, hand-off, scaling, the janitor) goes through here; a request's own miss is
handled by the router, which tries instances in turn itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from modelmesh.mesh.cache import now_ms
from modelmesh.mesh.channels import PeerChannels
from modelmesh.mesh.cluster import MAX_FAILED_INSTANCES, ClusterView
from modelmesh.mesh.errors import MeshError, RuntimeDown
from modelmesh.mesh.loader import ModelLoader
from modelmesh.mesh.records import NO_INSTANCE, ModelRecord
from modelmesh.mesh.tables import Table
from modelmesh.mesh.tasks import TaskOwner
from modelmesh.observability.logging import get_logger
from modelmesh.protos import model_mesh_pb2 as pb

log = get_logger("modelmesh.mesh.coordinator")

ENSURE_LOADED = "/mmesh.ModelMesh/ensureLoaded"
PEER_CALL_TIMEOUT_S = 10


class LoadCoordinator:
    def __init__(self, instance_id: str, cluster: ClusterView, models: Table[ModelRecord], loader: ModelLoader,
                 peers: PeerChannels, tasks: TaskOwner, *,
                 on_failed_for_good: Callable[[str], Awaitable[None]]) -> None:
        self.instance_id = instance_id
        self.cluster = cluster
        self.models = models
        self.loader = loader
        self.peers = peers
        self.tasks = tasks
        self._on_failed_for_good = on_failed_for_good
        self._scaling: set[str] = set()
        self.accepting = True

    def stop_accepting(self) -> None:
        """Shutting down: no new copies started from here (hand-off asks peers directly)."""
        self.accepting = False

    # --- make sure a copy exists -----------------------------------------------------------

    async def ensure_loaded_somewhere(self, model_id: str, exclude: frozenset[str] = frozenset()) -> None:
        """Start a load if no live instance holds or is loading the model."""
        record = self.models.get(model_id)
        if record is None or self.cluster.live_holders(record):
            return
        failures = self.cluster.failures(record)
        if len(failures) >= MAX_FAILED_INSTANCES:
            await self._on_failed_for_good(model_id)
            return
        if not self.loader.runtime_reachable:
            # Our runtime is down (our published record may not say so yet): never ourselves.
            # Also what bounds hand-offs between instances whose runtimes are down.
            exclude = exclude | {self.instance_id}
        target = self.cluster.choose(record, exclude=failures | exclude)
        if target is None:
            if exclude:
                # Only the peers that just refused are left: no retry loop against them; the
                # next request or the janitor tries again.
                return
            if not self.cluster.placeable(record.type):
                await self._record_unplaceable(model_id)
            await self.after_failure(model_id)
            return
        # Claim the load for the chosen instance before answering (one write, which also
        # clears a "no instance" failure), so a status read right after loadNow/setVModel
        # says LOADING, not NOT_LOADED.
        await self.models.update(model_id, lambda r: r and (
            r if target in r.loading_in and NO_INSTANCE not in r.failed_in
            else r.without_failure_on(NO_INSTANCE).loading_on(target, now_ms())))
        self.start_load(model_id, target)

    def start_load(self, model_id: str, target: str) -> None:
        """Load a copy on `target` in the background (here, or by asking that peer)."""
        if target == self.instance_id:
            self.load_here(model_id)
        else:
            self.tasks.spawn(self.ask_peer_to_load(target, model_id), f"ask-peer-load:{model_id}")

    def load_here(self, model_id: str) -> None:
        self.tasks.spawn(self._load_here(model_id), f"load:{model_id}")

    async def _load_here(self, model_id: str) -> None:
        record = self.models.get(model_id)
        if record is None:
            return
        if not self.loader.runtime_reachable:
            # Chosen here before our runtime went down: hand the load on, with no failure
            # recorded against the model (ensure_loaded_somewhere skips this instance now).
            log.info("runtime unreachable: loading elsewhere", model_id=model_id)
            me = self.instance_id
            await self.models.update(model_id, lambda r: r and (
                r.without_copies_on({me}) if me in r.loading_in and me not in r.instance_ids else r))
            await self.ensure_loaded_somewhere(model_id)
            return
        try:
            await self.loader.ensure_local(model_id, record)
        except MeshError as e:
            log.info("background load did not succeed", model_id=model_id, error=e.message)

    async def ask_peer_to_load(self, peer_id: str, model_id: str) -> None:
        peer = self.cluster.live().get(peer_id)
        if peer is None:
            return
        try:
            call = self.peers.get(peer.endpoint).channel.unary_unary(
                ENSURE_LOADED, request_serializer=pb.EnsureLoadedRequest.SerializeToString,
                response_deserializer=pb.ModelStatusInfo.FromString)
            await call(pb.EnsureLoadedRequest(modelId=model_id), timeout=PEER_CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            log.warning("peer did not take the load; loading elsewhere", peer=peer_id, model_id=model_id,
                        error=e.details())
            await self.ensure_loaded_somewhere(model_id, exclude=frozenset({peer_id}))

    async def accept_load_request(self, request: pb.EnsureLoadedRequest) -> pb.ModelStatusInfo:
        """A peer chose this instance for a load (the internal ensureLoaded)."""
        if self.models.get(request.modelId) is None:
            return pb.ModelStatusInfo(status=pb.ModelStatusInfo.NOT_FOUND)
        if not self.loader.runtime_reachable:
            # Refused: the asking peer loads elsewhere (and does not ask us again for it).
            raise RuntimeDown(f"ModelRuntime UNAVAILABLE: runtime unreachable, not loading {request.modelId} here")
        self.load_here(request.modelId)
        return pb.ModelStatusInfo(status=pb.ModelStatusInfo.LOADING)

    # --- after a failure -------------------------------------------------------------------

    async def after_failure(self, model_id: str, runtime_down: bool = False) -> None:
        """A load failed (here, or no instance could take it): retry on another instance
        while fewer than MAX_FAILED_INSTANCES failed and one is left, else it failed for good.
        `runtime_down`: it failed here because our runtime was unreachable (not recorded
        against the model): try any other instance."""
        record = self.models.get(model_id)
        if record is None or self.cluster.live_holders(record):
            return
        if runtime_down:
            await self.ensure_loaded_somewhere(model_id)  # not here: the loader refuses loads now
            return
        if not self.cluster.failed_for_good(record):
            await self.ensure_loaded_somewhere(model_id)
            return
        await self._on_failed_for_good(model_id)

    async def _record_unplaceable(self, model_id: str) -> None:
        message = self.cluster.constraints.no_instance_message((self.models.get(model_id) or ModelRecord("")).type)

        def change(r: ModelRecord | None) -> ModelRecord | None:
            if r is None or r.fail_msgs.get(NO_INSTANCE) == message:
                return r
            return r.failed_on(NO_INSTANCE, now_ms(), message)

        await self.models.update(model_id, change)

    async def retry_unplaceable(self) -> None:
        """Models no instance could take: an instance that can may have joined."""
        for model_id, record in self.models.records():
            if NO_INSTANCE in record.failed_in:
                await self.ensure_loaded_somewhere(model_id)

    # --- more copies -------------------------------------------------------------------------

    async def add_copy_elsewhere(self, model_id: str) -> bool:
        """Ask another instance to load a copy; False when no other instance can."""
        record = self.models.get(model_id)
        if record is None:
            return False
        target = self.cluster.choose(record, exclude={self.instance_id})
        if target is None:
            return False
        await self.ask_peer_to_load(target, model_id)
        return True

    def add_copy(self, model_id: str, reason: str) -> None:
        """A second copy of a busy model, on an instance without one (started, not awaited)."""
        record = self.models.get(model_id)
        if record is None or not self.accepting:
            return
        holders = set(self.cluster.live_holders(record))
        if len(holders) >= 2:
            return
        target = self.cluster.choose(record, exclude=holders | set(record.failed_in))
        if target is not None:
            log.info("adding a copy of a busy model", model_id=model_id, reason=reason, target=target)
            self.start_load(model_id, target)

    def copy_overloaded(self, model_id: str) -> None:
        """More requests in flight on our copy than one copy should take: add a copy
        elsewhere if there is only one (once at a time per model)."""
        if model_id in self._scaling or not self.accepting:
            return
        record = self.models.get(model_id)
        if record is None or len(self.cluster.live_holders(record)) >= 2:
            return
        self._scaling.add(model_id)

        async def scale() -> None:
            try:
                await self.add_copy_elsewhere(model_id)
            finally:
                self._scaling.discard(model_id)

        self.tasks.spawn(scale(), f"add-copy:{model_id}")
