"""Read-only questions over the watched tables: which instances are live, which of them hold
or are loading a model, where a model could be loaded, what its status is. Answers come
from memory (the watched views), never from a store round trip."""

from __future__ import annotations

from modelmesh.mesh.cache import now_ms
from modelmesh.mesh.constraints import TypeConstraints
from modelmesh.mesh.placement import MAX_FAILED_INSTANCES, choose_instance, eligible_instances
from modelmesh.mesh.records import InstanceRecord, ModelRecord
from modelmesh.mesh.status import model_status
from modelmesh.mesh.tables import Table
from modelmesh.protos import model_mesh_pb2 as pb

__all__ = ["MAX_FAILED_INSTANCES", "ClusterView"]


class ClusterView:
    def __init__(self, instance_id: str, models: Table[ModelRecord], instances: Table[InstanceRecord],
                 constraints: TypeConstraints, *, default_size: int, failure_expiry_ms: int) -> None:
        self.instance_id = instance_id
        self.models = models
        self.instances = instances
        self.constraints = constraints
        self.default_size = default_size
        self.failure_expiry_ms = failure_expiry_ms

    def live(self) -> dict[str, InstanceRecord]:
        return self.instances.items()

    def live_holders(self, record: ModelRecord) -> list[str]:
        """Live instances that hold a copy of the model or are loading one."""
        live = self.instances.items()
        return [i for i in (*record.instance_ids, *record.loading_in) if i in live]

    def loaded_somewhere(self, model_id: str) -> bool:
        record = self.models.get(model_id)
        live = self.instances.items()
        return record is not None and any(i in live for i in record.instance_ids)

    def failures(self, record: ModelRecord) -> set[str]:
        """Instances where a load of the model failed recently."""
        return record.failed_instances(now_ms(), self.failure_expiry_ms)

    def failed_for_good(self, record: ModelRecord) -> bool:
        """No live copy, and the load failed on MAX_FAILED_INSTANCES instances or on every
        instance that could take it (so min(3, eligible instances) attempts)."""
        if self.live_holders(record):
            return False
        failures = self.failures(record)
        return len(failures) >= MAX_FAILED_INSTANCES or self.choose(record, exclude=failures) is None

    def choose(self, record: ModelRecord, exclude: set[str] | frozenset[str] = frozenset()) -> str | None:
        """The instance that should load the model, or None when none qualifies."""
        return choose_instance(record.type, self.default_size, self.instances.items(), self.constraints,
                               self.instance_id, exclude=exclude)

    def placeable(self, model_type: str) -> bool:
        """Some live instance's labels accept the type (shutting-down instances excluded)."""
        return bool(eligible_instances(model_type, self.instances.items(), self.constraints))

    def model_counts(self) -> tuple[int, int, int]:
        """(registered, loaded on a live instance, with a recent load failure): the cluster gauges."""
        live, now = self.instances.items(), now_ms()
        loaded = failing = 0
        for record in self.models.items().values():
            if any(i in live for i in record.instance_ids):
                loaded += 1
            if record.failed_in and record.live_failures(now, self.failure_expiry_ms):
                failing += 1
        return len(self.models), loaded, failing

    def status(self, model_id: str) -> pb.ModelStatusInfo:
        return model_status(self.models.get(model_id), self.instances.items(), now_ms(), self.failure_expiry_ms)
