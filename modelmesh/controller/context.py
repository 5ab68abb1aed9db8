"""What every reconciler sees: the API, the settings, the live config, the informer stores,
the mesh client and the queues. Owned by the Controller object (no module-level state)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from modelmesh.config.controller import ControllerSettings
from modelmesh.controller.deployment import RuntimeRef
from modelmesh.controller.kube import KubeApi
from modelmesh.controller.meshclient import MeshClient
from modelmesh.controller.runtime_spec import is_served, validate_runtime
from modelmesh.controller.user_config import ControllerConfig
from modelmesh.controller.watcher import Watcher
from modelmesh.controller.workqueue import WorkQueue
from modelmesh.modelspec.model_info import type_label
from modelmesh.modelspec.runtime_labels import runtime_labels
from modelmesh.modelspec.spec import (
    InvalidSpec,
    ModelSpec,
    is_modelmesh_isvc,
    parse_inference_service,
    parse_predictor,
)
from modelmesh.modelspec.status import RuntimeCatalog

PREDICTOR_KIND = "Predictor"
ISVC_KIND = "InferenceService"
NAMESPACE_LABEL = "modelmesh-enabled"


@dataclass
class Context:
    api: KubeApi
    settings: ControllerSettings
    mesh: MeshClient
    config: ControllerConfig = field(default_factory=ControllerConfig.defaults)
    config_error: str | None = None
    runtimes: Watcher | None = None
    cluster_runtimes: Watcher | None = None
    predictors: Watcher | None = None
    isvcs: Watcher | None = None
    namespaces: Watcher | None = None
    namespace_queue: WorkQueue | None = None
    runtime_queue: WorkQueue | None = None
    model_queue: WorkQueue | None = None
    hpa_version: str = "v2"
    has_service_monitor: bool = False
    secret_access: bool = True
    # (namespace, runtime) -> loop time a model that runtime can serve was last known to exist
    model_last_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    kv_watch_active: bool = False

    # --- scope ----------------------------------------------------------------------------

    def served_namespaces(self) -> list[str]:
        own = self.settings.namespace
        if self.settings.namespace_scope or self.namespaces is None:
            return [own]
        labelled = {name for _, name in self.namespaces.store}
        return sorted(labelled | {own})

    def serves(self, namespace: str) -> bool:
        return namespace in self.served_namespaces()

    # --- runtimes ---------------------------------------------------------------------------

    def runtimes_in(self, namespace: str) -> dict[str, RuntimeRef]:
        out: dict[str, RuntimeRef] = {}
        if self.cluster_runtimes is not None and not self.settings.namespace_scope:
            for obj in self.cluster_runtimes.items():
                out[obj["metadata"]["name"]] = _ref(obj, "ClusterServingRuntime")
        if self.runtimes is not None:
            for obj in self.runtimes.items(namespace):  # a namespaced runtime shadows a cluster one
                out[obj["metadata"]["name"]] = _ref(obj, "ServingRuntime")
        return out

    def valid_served_runtimes(self, namespace: str) -> dict[str, RuntimeRef]:
        return {name: ref for name, ref in sorted(self.runtimes_in(namespace).items())
                if is_served(ref.spec) and not validate_runtime(ref.spec, self.config.builtin_server_types)}

    def catalog(self, namespace: str) -> RuntimeCatalog:
        served = {name: frozenset(runtime_labels(name, ref.spec, self.config.rest_proxy_enabled))
                  for name, ref in self.valid_served_runtimes(namespace).items()}
        not_served = frozenset(name for name in self.runtimes_in(namespace) if name not in served)
        return RuntimeCatalog(served=served, not_served=not_served)

    # --- models -----------------------------------------------------------------------------

    def model_objects(self, namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.predictors is not None:
            for obj in self.predictors.items(namespace):
                yield PREDICTOR_KIND, obj
        if self.isvcs is not None:
            for obj in self.isvcs.items(namespace):
                if is_modelmesh_isvc(obj):
                    yield ISVC_KIND, obj

    def runtimes_serving(self, namespace: str, spec: ModelSpec, catalog: RuntimeCatalog | None = None) -> list[str]:
        required = [p for p in type_label(spec).split("|") if p]
        served = (catalog or self.catalog(namespace)).served
        return [name for name, labels in served.items() if all(r in labels for r in required)]

    def runtime_has_models(self, namespace: str, runtime: str) -> bool:
        catalog = self.catalog(namespace)
        for kind, obj in self.model_objects(namespace):
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            spec = parse_model(kind, obj)
            if spec is not None and runtime in self.runtimes_serving(namespace, spec, catalog):
                return True
        return False


def parse_model(kind: str, obj: dict[str, Any]) -> ModelSpec | None:
    try:
        return parse_predictor(obj) if kind == PREDICTOR_KIND else parse_inference_service(obj)
    except InvalidSpec:
        return None


def _ref(obj: dict[str, Any], kind: str) -> RuntimeRef:
    meta = obj.get("metadata") or {}
    return RuntimeRef(name=meta["name"], kind=kind, uid=meta.get("uid", ""), spec=obj.get("spec") or {},
                      annotations=meta.get("annotations") or {})
