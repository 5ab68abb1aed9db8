"""The Controller: informers (watch + resync) feeding per-object work queues, one reconciler
per kind of work. Started by the app once this replica holds the leader lease."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from modelmesh.config.controller import ControllerSettings
from modelmesh.controller import events
from modelmesh.controller.context import ISVC_KIND, NAMESPACE_LABEL, PREDICTOR_KIND, Context, parse_model
from modelmesh.controller.kube import (
    CLUSTER_SERVING_RUNTIME,
    CONFIG_MAP,
    ENDPOINTS,
    GROUP,
    INFERENCE_SERVICE,
    NAMESPACE,
    PREDICTOR,
    SECRET,
    SERVING_RUNTIME,
    KubeApi,
)
from modelmesh.controller.mesh_tables import MeshTableWatch, namespace_root
from modelmesh.controller.meshclient import GrpcMeshClient, MeshClient, TlsFiles
from modelmesh.controller.reconcilers.model import ModelReconciler
from modelmesh.controller.reconcilers.namespace import NamespaceReconciler
from modelmesh.controller.reconcilers.runtime import RuntimeReconciler
from modelmesh.controller.user_config import (
    CONFIG_KEY,
    CONFIG_MAP_NAME,
    ConfigError,
    ControllerConfig,
    load_defaults_file,
)
from modelmesh.controller.watcher import Watcher
from modelmesh.controller.workqueue import QueueMetrics, WorkQueue
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller")

class ControllerStartError(RuntimeError):
    """The cluster lacks something the controller needs; the message says what to do."""


def _same_spec(a: dict, b: dict) -> bool:
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    return a.get("spec") == b.get("spec") and ma.get("annotations") == mb.get("annotations") \
        and ma.get("deletionTimestamp") == mb.get("deletionTimestamp")


# Opens the mesh's coordination store from the etcd secret's files (etcd_connection and any
# certificate files beside it); None: no table watch, load results are polled.
KVOpener = Callable[[dict[str, bytes]], Awaitable[Any]]


class Controller:
    def __init__(self, api: KubeApi, settings: ControllerSettings, registry: CollectorRegistry,
                 mesh: MeshClient | None = None, kv_opener: KVOpener | None = None,
                 resync_s: float = 300.0, clock: Callable[[], float] | None = None,
                 poll_max_s: float = 5.0, config_defaults: Mapping[str, Any] | None = None) -> None:
        """`config_defaults`: load_defaults_file's result (None: read CONFIG_DEFAULTS_FILE now;
        a broken file raises ConfigError)."""
        self.api = api
        self.settings = settings
        if config_defaults is None:
            config_defaults = load_defaults_file(settings.config_defaults_file)
        self.config_defaults = config_defaults
        self.ctx = Context(api=api, settings=settings, mesh=mesh or GrpcMeshClient(self._resolve_mesh),
                           config=ControllerConfig.defaults(config_defaults))
        self._owns_mesh = mesh is None
        self._kv_opener = kv_opener
        self._resync_s = resync_s
        self._poll_max_s = poll_max_s
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._metrics = QueueMetrics(registry)
        self._config_valid = Gauge("modelmesh_controller_config_valid",
                                   "1 when model-serving-config is valid and applied", registry=registry)
        self._config_valid.set(1)
        self._watchers: list[Watcher] = []
        self._queues: list[WorkQueue] = []
        self._kv_watch: MeshTableWatch | None = None
        self._reported_config_rv: str | None = None
        self.configmaps: Watcher | None = None
        self.secrets: Watcher | None = None
        self._started = False

    # --- start / stop -----------------------------------------------------------------------

    async def start(self, sync_timeout_s: float = 60.0) -> None:
        ctx, s, api = self.ctx, self.settings, self.api
        for plural in ("servingruntimes", "predictors"):
            if not await api.has_resource(GROUP, "v1alpha1", plural):
                raise ControllerStartError(f"CRD {plural}.{GROUP} is not installed: kubectl apply -f deploy/crds/")
        isvc_on = s.enable_isvc_watch
        if isvc_on is None:
            isvc_on = await api.has_resource(GROUP, "v1beta1", "inferenceservices")
        csr_on = s.enable_csr_watch
        if csr_on is None:
            csr_on = not s.namespace_scope and await api.has_resource(GROUP, "v1alpha1", "clusterservingruntimes")
        ctx.secret_access = True if s.enable_secret_watch is None else s.enable_secret_watch
        versions = await api.served_versions("autoscaling")
        ctx.hpa_version = "v2" if "v2" in versions else "v2beta2"
        ctx.has_service_monitor = await api.has_resource("monitoring.coreos.com", "v1", "servicemonitors")

        ctx.namespace_queue = self._queue("namespace", NamespaceReconciler(ctx))
        ctx.runtime_queue = self._queue("runtime", RuntimeReconciler(ctx, self._clock))
        ctx.model_queue = self._queue("model", ModelReconciler(ctx, poll_max_s=self._poll_max_s), workers=8)
        self._config_queue = self._queue("config", self._reconcile_config, workers=1)

        scope_ns = s.namespace if s.namespace_scope else None
        if not s.namespace_scope:
            ctx.namespaces = self._watch(NAMESPACE, self._on_namespace, None,
                                         label_selector=f"{NAMESPACE_LABEL}=true")
        ctx.runtimes = self._watch(SERVING_RUNTIME, self._on_runtime, scope_ns)
        if csr_on:
            ctx.cluster_runtimes = self._watch(CLUSTER_SERVING_RUNTIME, self._on_cluster_runtime, None)
        ctx.predictors = self._watch(PREDICTOR, self._model_handler(PREDICTOR_KIND), scope_ns)
        if isvc_on:
            ctx.isvcs = self._watch(INFERENCE_SERVICE, self._model_handler(ISVC_KIND), scope_ns)
        self.configmaps = self._watch(CONFIG_MAP, self._on_configmap, s.namespace)
        if ctx.secret_access:
            self.secrets = self._watch(SECRET, self._on_secret, s.namespace)
        for w in self._watchers:
            w.start()
        await asyncio.wait_for(asyncio.gather(*(w.synced.wait() for w in self._watchers)), sync_timeout_s)
        # The config first, so the first reconciles already use the user's settings.
        await self._reconcile_config(None)
        for q in self._queues:
            q.start()
        self._started = True
        await self._start_kv_watch()
        self.enqueue_all()
        log.info("controller started", namespace=s.namespace, namespace_scope=s.namespace_scope,
                 isvc=isvc_on, cluster_runtimes=csr_on, hpa=ctx.hpa_version,
                 mesh_table_watch=ctx.kv_watch_active)

    async def stop(self) -> None:
        for w in self._watchers:
            await w.stop()
        for q in self._queues:
            await q.stop()
        if self._kv_watch is not None:
            await self._kv_watch.close()
        if self._owns_mesh:
            await self.ctx.mesh.close()

    def _queue(self, name: str, handler, workers: int = 2) -> WorkQueue:
        q = WorkQueue(name, handler, workers=workers, metrics=self._metrics)
        self._queues.append(q)
        return q

    def _watch(self, kind, on_event, namespace, label_selector: str = "") -> Watcher:
        w = Watcher(self.api, kind, on_event, namespace, self._resync_s, label_selector)
        self._watchers.append(w)
        return w

    # --- event routing ----------------------------------------------------------------------

    def enqueue_namespace(self, namespace: str) -> None:
        ctx = self.ctx
        ctx.namespace_queue.add(namespace)
        for name in ctx.runtimes_in(namespace):
            ctx.runtime_queue.add((namespace, name))
        for kind, obj in ctx.model_objects(namespace):
            ctx.model_queue.add((kind, namespace, obj["metadata"]["name"]))
        if self._kv_watch is not None and ctx.serves(namespace):
            self._kv_watch.ensure(namespace, self._namespace_root(namespace))

    def enqueue_all(self) -> None:
        for ns in self.ctx.served_namespaces():
            self.enqueue_namespace(ns)

    def _on_namespace(self, event: str, obj: dict, prev: dict | None) -> None:
        self.enqueue_namespace(obj["metadata"]["name"])

    def _on_runtime(self, event: str, obj: dict, prev: dict | None) -> None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        self.ctx.runtime_queue.add((ns, name))
        self.enqueue_namespace(ns)

    def _on_cluster_runtime(self, event: str, obj: dict, prev: dict | None) -> None:
        for ns in self.ctx.served_namespaces():
            self.ctx.runtime_queue.add((ns, obj["metadata"]["name"]))
            self.enqueue_namespace(ns)

    def _model_handler(self, kind: str):
        def on_model(event: str, obj: dict, prev: dict | None) -> None:
            ctx = self.ctx
            ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            ctx.model_queue.add((kind, ns, name))
            if event != "DELETED" and prev is not None and _same_spec(prev, obj):
                return  # a status-only change: runtimes are not affected
            if prev is not None:
                # A model going away (or changing type) starts the scale-to-zero grace period
                # of the runtimes that could serve it, counted from now.
                old = parse_model(kind, prev)
                if old is not None:
                    now = self._clock()
                    for runtime in ctx.runtimes_serving(ns, old):
                        ctx.model_last_seen[(ns, runtime)] = now
            for runtime in ctx.runtimes_in(ns):
                ctx.runtime_queue.add((ns, runtime))
        return on_model

    def _on_configmap(self, event: str, obj: dict, prev: dict | None) -> None:
        if obj["metadata"]["name"] == CONFIG_MAP_NAME:
            self._config_queue.add("config")

    def _on_secret(self, event: str, obj: dict, prev: dict | None) -> None:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        if name == self.settings.etcd_secret_name:
            for ns in self.ctx.served_namespaces():
                self.ctx.namespace_queue.add(ns)
        # The runtime pods' trust setting depends on the TLS secret's keys. (Only the watched,
        # controller namespace; elsewhere the next reconcile of the runtime or config picks
        # a change up, and the reference reacts to none.)
        if name == self.ctx.config.tls_secret_name and self.ctx.serves(namespace):
            for runtime in self.ctx.runtimes_in(namespace):
                self.ctx.runtime_queue.add((namespace, runtime))

    # --- config -----------------------------------------------------------------------------

    async def _reconcile_config(self, _key: Any) -> None:
        ctx = self.ctx
        cm = self.configmaps.get(self.settings.namespace, CONFIG_MAP_NAME) if self.configmaps else None
        text = ((cm or {}).get("data") or {}).get(CONFIG_KEY)
        try:
            config = ControllerConfig.from_yaml(text, self.config_defaults)
        except ConfigError as e:
            ctx.config_error = str(e)
            self._config_valid.set(0)
            log.error("invalid model-serving-config, keeping the previous config", error=str(e))
            await self._report_config_error(cm, str(e))
            return None
        ctx.config_error = None
        self._config_valid.set(1)
        if config != ctx.config:
            log.info("config changed, reconciling everything", source="configmap" if cm else "defaults")
            ctx.config = config
            if self._started:
                self.enqueue_all()
        return None

    async def _report_config_error(self, cm: dict | None, message: str) -> None:
        """A Warning Event on the ConfigMap (once per version of it)."""
        if cm is None or cm["metadata"].get("resourceVersion") == self._reported_config_rv:
            return
        self._reported_config_rv = cm["metadata"].get("resourceVersion")
        involved = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": cm["metadata"]}
        await events.record(self.api, events.warning_event(involved, cm["metadata"]["namespace"], "InvalidConfig",
                                                           f"not applied: {message}"))

    # --- the mesh ---------------------------------------------------------------------------

    async def _resolve_mesh(self, namespace: str) -> tuple[list[str], TlsFiles | None]:
        config = self.ctx.config
        tls = await self._tls_files(namespace) if config.tls_secret_name else None
        if config.modelmesh_endpoint:
            return [config.modelmesh_endpoint], tls
        ep = await self.api.get(ENDPOINTS, config.service_name, namespace)
        targets = []
        for subset in (ep or {}).get("subsets") or []:
            ports = subset.get("ports") or []
            port = next((p["port"] for p in ports if p.get("name") == "grpc"), config.service_port)
            targets += [f"{a['ip']}:{port}" for a in subset.get("addresses") or []]  # ready ones only
        return sorted(targets), tls

    async def _tls_files(self, namespace: str) -> TlsFiles | None:
        config = self.ctx.config
        secret = await self.api.get(SECRET, config.tls_secret_name, namespace)
        if secret is None:
            return TlsFiles()
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        root = data.get("ca.crt") or data.get("tls.crt")
        if config.tls_client_auth:
            return TlsFiles(root, data.get("tls.key"), data.get("tls.crt"))
        return TlsFiles(root)

    def _namespace_root(self, namespace: str) -> str:
        return namespace_root(self._kv_watch.root_prefix if self._kv_watch else "", namespace,
                              self.settings.namespace, self.settings.namespace_scope)

    async def _start_kv_watch(self) -> None:
        if self._kv_opener is None or not self.ctx.secret_access:
            return
        secret = await self.api.get(SECRET, self.settings.etcd_secret_name, self.settings.namespace)
        files = {k: base64.b64decode(v) for k, v in ((secret or {}).get("data") or {}).items()}
        raw = files.get("etcd_connection", b"")
        if not raw:
            log.info("no etcd secret: load results are polled", secret=self.settings.etcd_secret_name)
            return
        try:
            root = json.loads(raw).get("root_prefix") or ""
            store = await self._kv_opener(files)
        except Exception as e:  # noqa: BLE001 - the poll fallback keeps statuses right
            log.warning("cannot watch the mesh tables, polling instead", error=repr(e)[:200])
            return

        def on_change(namespace: str, vmodel: str) -> None:
            for kind in (PREDICTOR_KIND, ISVC_KIND):
                w = self.ctx.predictors if kind == PREDICTOR_KIND else self.ctx.isvcs
                if w is not None and w.get(namespace, vmodel) is not None:
                    self.ctx.model_queue.add((kind, namespace, vmodel))

        self._kv_watch = MeshTableWatch(store, root, self.ctx.config.service_name, on_change)
        self.ctx.kv_watch_active = True
