"""`modelmesh local`: the whole system on one machine, composed from the same parts as a
cluster: the coordination store (embedded, served to the children through its etcd front,
or etcd with --kv-store), runtime instances (model server, built-in adapter and a mesh
instance in front of them, each a supervised child process), the V2 REST proxy, the metrics
endpoint (with the meshes' metrics), and the config dir in place of the API server.

The terminal shows progress and one summary once ready; structured logs go to
`<state>/logs/modelmesh.log`, each child's output to its own log beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelmesh import __version__
from modelmesh.apps.local.children import ChildFailed
from modelmesh.apps.local.custom_runtime import InvalidRuntime, parse_custom_runtime
from modelmesh.apps.local.declared import ConfigDir, LocalStorage
from modelmesh.apps.local.instance import InstancePlan, RuntimeInstance, constraints_json
from modelmesh.apps.local.registrar import Registrar, status_json
from modelmesh.apps.local.runtimes import TRITON, RuntimeChoiceError, choose_runtimes
from modelmesh.apps.local.status import write_snapshot
from modelmesh.config.local import LocalSettings
from modelmesh.config.mesh import MeshSettings
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import SettingsError, load_settings
from modelmesh.controller.meshclient import GrpcMeshClient
from modelmesh.kv import KVConfigError, KVStore, StoreError, open_store
from modelmesh.kv.embedded import EmbeddedStore
from modelmesh.kv.etcd_front import EtcdFront
from modelmesh.lifecycle import StartupError
from modelmesh.modelspec.runtime_labels import type_constraints
from modelmesh.modelspec.status import RuntimeCatalog
from modelmesh.observability.http import HttpEndpoint
from modelmesh.observability.logging import get_logger
from modelmesh.proxy.server import RestProxy

log = get_logger("modelmesh.local")

POLL_S = 1.0  # config dir scan and status refresh period


class Terminal:
    """Progress for people: one line per event on stdout."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, message: str) -> None:
        print(f"[modelmesh local] {message}", file=self.stream, flush=True)


class MeshMetrics:
    """The metrics of every mesh child as one set of families, labelled by instance: scraped
    from the children (`refresh`, before each exposition) and served from that copy."""

    def __init__(self, instances: list[RuntimeInstance]) -> None:
        self.instances = instances
        self._families: list[Metric] = []

    async def refresh(self) -> None:
        meshes = [i.mesh for i in self.instances if i.mesh is not None]
        texts = await asyncio.gather(*(m.metrics_text() for m in meshes))
        merged: dict[str, Metric] = {}
        for mesh, text in zip(meshes, texts):
            try:
                families = list(text_string_to_metric_families(text))
            except ValueError as e:
                log.warning("unreadable mesh metrics", instance=mesh.id, error=str(e))
                continue
            for fam in families:
                if fam.name == "modelmesh_build_info":  # this process's own says the mode
                    continue
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                out.samples.extend(Sample(s.name, {**s.labels, "mm_instance": mesh.id}, s.value, s.timestamp,
                                          s.exemplar) for s in fam.samples)
        self._families = list(merged.values())

    def collect(self):
        return list(self._families)


class LocalApp:
    def __init__(self, settings: LocalSettings, terminal: Terminal | None = None) -> None:
        self.settings = settings
        self.say = terminal or Terminal()
        self.config_dir = Path(settings.config_dir).resolve()
        self.state_dir = Path(settings.effective_state_dir).resolve()
        self.storage_config_dir = Path(settings.storage_config or self.config_dir / "storage-config").resolve()
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge("modelmesh_build_info", "Build information", ["version", "mode"],
              registry=self.registry).labels(__version__, "local").set(1)
        self.store: KVStore | None = None
        self.etcd_front: EtcdFront | None = None  # the embedded store, served to the mesh children
        self.instances: list[RuntimeInstance] = []
        self.mesh_metrics = MeshMetrics(self.instances)
        self.proxy: RestProxy | None = None
        self.metrics: HttpEndpoint | None = None
        self.mesh_client: GrpcMeshClient | None = None
        self.registrar: Registrar | None = None
        self.config: ConfigDir | None = None
        self._loop_task: asyncio.Task | None = None
        self._done = asyncio.Event()
        self._scanned = False
        self._announced = False
        self._snapshot: str | None = None
        self._state = "starting"
        self._runtime_docs: str = ""
        self._runtimes_noted = False
        self._reported: set[tuple[str, str]] = set()  # file problems already shown

    @property
    def mesh_shutdown_s(self) -> float:
        """Each mesh's hand-off budget on stop (SHUTDOWN_TIMEOUT_MS of the children)."""
        return min(self.settings.shutdown_timeout, 10.0)

    # --- readiness -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The mesh and at least one runtime ready, and every declared model registered."""
        return self._state == "running" and self._scanned and any(i.mesh_ready for i in self.instances) \
            and self.registrar is not None and self.registrar.all_registered

    @property
    def endpoints(self) -> dict[str, str]:
        s = self.settings
        return {"grpc": f"{s.host}:{s.grpc_port}", "rest": f"http://{s.host}:{s.rest_port}",
                "metrics": f"http://{s.host}:{s.metrics_port}/metrics"}

    # --- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._start()
        except (StartupError, OSError) as e:
            print(f"modelmesh local: {e}", file=sys.stderr, flush=True)
            raise

    async def _start(self) -> None:
        s = self.settings
        try:
            runtimes = choose_runtimes(s.runtimes)
        except RuntimeChoiceError as e:
            raise StartupError(str(e)) from None
        try:
            load_settings(RestProxySettings, os.environ)
            load_settings(MeshSettings, os.environ)
        except SettingsError as e:
            raise StartupError(str(e)) from None
        for r in runtimes:
            missing = r.missing()
            if missing:
                raise StartupError(f"runtime {r.name} cannot start: {missing}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"config dir {self.config_dir}; state dir {self.state_dir}")
        try:
            self.store = await open_store(s.kv_store, self.state_dir / "kv")
            await self.store.revision()
            if isinstance(self.store, EmbeddedStore):
                self.etcd_front = await EtcdFront(self.store).start()
        except (KVConfigError, StoreError, OSError) as e:
            raise StartupError(f"coordination store: {e}") from None
        children_kv_store = f"etcd:{self.etcd_front.endpoint}" if self.etcd_front is not None else s.kv_store

        # Custom runtimes are read once, at start (their ports and commands are fixed).
        mounts = self.state_dir / "mounts"
        self.config = ConfigDir(self.config_dir, LocalStorage(mounts))
        await asyncio.to_thread(self.config.scan)
        runtimes = runtimes + self._custom_runtimes()
        if not runtimes:
            raise StartupError("no runtime to start: --runtimes none and no custom runtime in the config dir")
        self._runtime_docs = self._runtime_fingerprint()
        constraints = constraints_json(type_constraints([(r.name, r.spec) for r in runtimes], True))
        plans = []
        for r in runtimes:
            for i in range(1 if r.fixed_ports else s.instances):
                plans.append(InstancePlan(
                    runtime=r, index=i, workdir=self.state_dir / "instances" / f"{r.name}-{i}",
                    grpc_port=s.grpc_port if not plans else 0, model_memory_bytes=s.model_memory_bytes,
                    storage_config_dir=self.storage_config_dir, mounts_root=mounts, type_constraints=constraints,
                    host=s.host))
        self.instances[:] = [RuntimeInstance(p, children_kv_store, self.say) for p in plans]
        self.registry.register(self.mesh_metrics)

        if s.grpc_port:  # REST and metrics listen from the start (503 until ready)
            await self._start_front_door(s.grpc_port)
        self.say(f"starting {len(plans)} runtime instance(s): {', '.join(p.id for p in plans)}")
        started = time.monotonic()
        results = await asyncio.gather(*(i.start_runtime() for i in self.instances), return_exceptions=True)
        # With --runtimes auto, Triton is a bonus: if it cannot start, the rest still serves.
        optional = {TRITON.name} if s.runtimes in ((), ("auto",)) else set()
        dropped = {i.plan.runtime.name for i, r in zip(self.instances, results)
                   if isinstance(r, ChildFailed) and i.plan.runtime.name in optional}
        for inst, result in zip(self.instances, results):
            if isinstance(result, BaseException) and inst.plan.runtime.name not in dropped:
                if isinstance(result, ChildFailed):
                    raise StartupError(f"runtime cannot start: {result}")
                raise result
        if dropped:
            failure = next(r for i, r in zip(self.instances, results) if i.plan.runtime.name in dropped)
            self.say(f"{', '.join(sorted(dropped))} cannot start ({failure}); going on without it")
            for inst in [i for i in self.instances if i.plan.runtime.name in dropped]:
                await inst.stop()
            self.instances[:] = [i for i in self.instances if i.plan.runtime.name not in dropped]
            runtimes = [r for r in runtimes if r.name not in dropped]
            constraints = constraints_json(type_constraints([(r.name, r.spec) for r in runtimes], True))
            for inst in self.instances:
                inst.plan = dataclasses.replace(inst.plan, type_constraints=constraints)
        self.say(f"model servers ready in {time.monotonic() - started:.1f}s; starting the mesh")
        # The first instance binds the front-door port: start it alone so a failure names it.
        for inst in self.instances:
            try:
                await inst.start_mesh(self.mesh_shutdown_s)
            except ChildFailed as e:
                raise StartupError(f"mesh {inst.plan.id} cannot start: {e}") from None

        if self.proxy is None:  # an ephemeral --grpc-port is known only now
            await self._start_front_door(self.instances[0].grpc_port)

        front = [f"127.0.0.1:{i.grpc_port}" for i in self.instances]

        async def resolve(_namespace: str):
            return front, None

        self.mesh_client = GrpcMeshClient(resolve, timeout_s=30)
        catalog = RuntimeCatalog(served={r.name: frozenset(r.labels()) for r in runtimes})
        self.registrar = Registrar(self.mesh_client, catalog, self.state_dir / "registered.json", self.config_dir)
        self._state = "running"
        await self._reconcile()
        self._loop_task = asyncio.create_task(self._loop(), name="local-reconcile")
        self._loop_task.add_done_callback(self._loop_ended)

    async def _start_front_door(self, grpc_port: int) -> None:
        s = self.settings
        # REST_PROXY_* settings in the environment apply (access log, sizes); not where it listens.
        proxy_settings = dataclasses.replace(
            load_settings(RestProxySettings, os.environ), listen_port=s.rest_port, listen_host=s.host,
            grpc_host="127.0.0.1", grpc_port=grpc_port, use_tls=False, metrics_port=0,
            tls_cert_path="", tls_key_path="")
        self.proxy = RestProxy(proxy_settings, self.registry)
        self.proxy.app.middlewares.append(self._health_gate)
        await self.proxy.start()
        self.metrics = HttpEndpoint(s.host, s.metrics_port)
        self.metrics.add_metrics(self.registry, before=self.mesh_metrics.refresh)
        await self.metrics.start()

    def _custom_runtimes(self) -> list:
        found = []
        for path, doc in self.config.runtime_documents():
            try:
                runtime = parse_custom_runtime(doc)
            except InvalidRuntime as e:
                name = (doc.get("metadata") or {}).get("name", "?")
                self.config.add_error(path, f"{doc.get('kind')} {name}: {e}")
                continue
            if any(r.name == runtime.name for r in found):
                self.config.add_error(path, f"runtime {runtime.name!r} is declared twice")
                continue
            found.append(runtime)
            self.say(f"custom runtime {runtime.name} from {os.path.basename(path)}")
        return found

    def _runtime_fingerprint(self) -> str:
        return json.dumps([doc for _, doc in self.config.runtime_documents()], sort_keys=True, default=str)

    # --- the config dir -> mesh loop -------------------------------------------------------

    def _loop_ended(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("reconcile loop failed", error=repr(exc))
            self.say(f"internal error: {exc!r} (see {self.state_dir / 'logs'})")
            self._done.set()

    async def _loop(self) -> None:
        last_error = ""
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self._reconcile()
                last_error = ""
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one bad pass must not end the mode; it is retried
                log.exception("config dir pass failed")
                if repr(e) != last_error:
                    last_error = repr(e)
                    self.say(f"config dir pass failed, retrying: {e!r} (log: {self.state_dir / 'logs'})")

    async def _reconcile(self) -> None:
        assert self.config is not None and self.registrar is not None
        changed = await asyncio.to_thread(self.config.scan) or not self._scanned
        if changed and self._runtime_fingerprint() != self._runtime_docs and not self._runtimes_noted:
            self._runtimes_noted = True
            self.say("a runtime document changed: runtimes are read at start; restart modelmesh local to apply it")
        if changed:
            _, invalid, errors = self.config.models()
            problems = {(path, p) for path, ps in errors.items() for p in ps}
            problems |= {(inv.file, f"model {inv.name}: {inv.reason}: {inv.message}") for inv in invalid}
            for path, problem in sorted(problems - self._reported):  # each once, while it lasts
                log.warning("invalid config file", file=path, error=problem)
                self.say(f"{os.path.basename(path)}: {problem}")
            self._reported = problems
        if changed or not self.registrar.all_registered:
            models, invalid, _ = self.config.models()
            for line in await self.registrar.apply(models, invalid):
                self.say(line)
        before = {r.name: (r.status.active, r.status.target) for r in self.registrar.rows()}
        await self.registrar.refresh()
        for row in self.registrar.rows():
            state = (row.status.active, row.status.target)
            if before.get(row.name) != state and row.status.active.value:
                target = f" -> {row.status.target.value}" if row.status.target.value else ""
                failed = "FailedToLoad" in (row.status.active.value, row.status.target.value)
                f = row.status.failure
                why = f" ({f.reason.value}: {f.message})" if f is not None and failed else ""
                self.say(f"model {row.name}: {row.status.active.value}{target}{why}")
        self._scanned = True  # from here to the status write nothing awaits: both agree on `ready`
        if self.ready and not self._announced:
            self._announced = True
            self.say(self.summary())
        self._write_status()

    def _write_status(self) -> None:
        snapshot = {
            "pid": os.getpid(), "state": self._state, "ready": self.ready, "config_dir": str(self.config_dir),
            "endpoints": self.endpoints, "runtimes": [i.describe() for i in self.instances],
            "models": [status_json(r) for r in self.registrar.rows()] if self.registrar else [],
            "file_errors": self.config.models()[2] if self.config else {},
            "file_notes": self.config.notes() if self.config else {},
        }
        try:
            self._snapshot = write_snapshot(self.state_dir, snapshot, self._snapshot)
        except OSError as e:
            log.warning("cannot write status", error=str(e))

    def summary(self) -> str:
        ep = self.endpoints
        served = [r for r in self.registrar.rows() if r.status.available] if self.registrar else []
        names = ", ".join(r.name for r in served) or f"(none yet: add InferenceService YAML to {self.config_dir})"
        lines = ["ready.",
                 f"  gRPC (mmesh.ModelMesh + KServe V2): {ep['grpc']}",
                 f"  REST (KServe V2):                   {ep['rest']}",
                 f"  metrics:                            {ep['metrics']}",
                 f"  models: {names}",
                 f"  status: {modelmesh_command()} local status --state-dir {self.state_dir}"]
        if served:
            lines += ["  try it (the inputs are the 4 features of the iris examples; change them for your model):",
                      *(f"    {line}" for line in try_commands(self._example(served), ep, self.settings))]
        return "\n".join(lines)

    def _example(self, served: list) -> str:
        """A served model to show the commands with: an sklearn one when there is one."""
        for row in served:
            m = self.registrar.desired.get(row.name)
            if m is not None and m.spec.model_type == "sklearn":
                return row.name
        return served[0].name

    # --- REST front door -------------------------------------------------------------------

    @web.middleware
    async def _health_gate(self, request: web.Request, handler) -> web.StreamResponse:
        """Ready only when this whole mode is: the mesh answers for itself, not for the
        models still to be registered from the config dir."""
        if request.path == "/v2/health/ready" and not self.ready:
            return web.json_response({"ready": False}, status=503)
        if request.path == "/v2/health/live" and not any(i.mesh_ready for i in self.instances):
            return web.json_response({"live": True})  # starting (or the meshes are restarting): this process lives
        return await handler(request)

    # --- stop ------------------------------------------------------------------------------

    async def wait_done(self) -> None:
        await self._done.wait()

    async def stop(self) -> None:
        self._state = "stopping"
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        self.say("stopping")
        if self.proxy is not None:
            await self.proxy.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        if self.mesh_client is not None:
            await self.mesh_client.close()
        await asyncio.gather(*(i.stop() for i in self.instances), return_exceptions=True)
        if self.etcd_front is not None:
            await self.etcd_front.stop()
        if self.store is not None:
            await self.store.close()
        self._state = "stopped"
        if self.registrar is not None or self.instances:
            self._write_status()
        self.say("stopped")


IRIS_ROW = [6.8, 2.8, 4.8, 1.4]


def modelmesh_command() -> str:
    """How to run this binary again: the venv's entry point when there is one."""
    entry = Path(sys.executable).parent / "modelmesh"
    return str(entry) if entry.exists() else f"{sys.executable} -m modelmesh.cli"


def try_commands(name: str, ep: dict[str, str], settings: LocalSettings) -> list[str]:
    """Working commands for one model: curl (REST) and gRPC (grpcurl when installed, else
    this interpreter with the project's generated stubs)."""
    body = json.dumps({"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [IRIS_ROW]}]})
    lines = [f"curl -s {ep['rest']}/v2/models/{name}/ready",
             f"curl -s {ep['rest']}/v2/models/{name}/infer -H 'Content-Type: application/json' -d '{body}'"]
    protos = Path(__file__).resolve().parents[3] / "protos"
    if shutil.which("grpcurl") and (protos / "grpc_predict_v2.proto").exists():
        req = json.dumps({"model_name": name, "inputs": [{"name": "predict", "datatype": "FP32", "shape": [1, 4],
                                                          "contents": {"fp32_contents": IRIS_ROW}}]})
        lines.append(f"grpcurl -plaintext -import-path {protos} -proto grpc_predict_v2.proto -d '{req}' "
                     f"{ep['grpc']} inference.GRPCInferenceService/ModelInfer")
    else:
        code = ("import grpc; from modelmesh.protos import grpc_predict_v2_pb2 as pb, grpc_predict_v2_pb2_grpc as g; "
                f"s = g.GRPCInferenceServiceStub(grpc.insecure_channel('{ep['grpc']}')); "
                f"print(s.ModelInfer(pb.ModelInferRequest(model_name='{name}', inputs=[pb.ModelInferRequest."
                f"InferInputTensor(name='predict', datatype='FP32', shape=[1, 4], "
                f"contents=pb.InferTensorContents(fp32_contents={IRIS_ROW}))])))")
        lines.append(f'{sys.executable} -c "{code}"')
    return lines
