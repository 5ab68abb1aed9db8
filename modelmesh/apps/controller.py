"""`modelmesh controller`: Kubernetes access, leader election, the Controller, the
admission webhook, /healthz + /readyz and metrics (:8080)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
import uuid
from pathlib import Path

from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.controller import DEFAULTS_FILE, ControllerSettings
from modelmesh.config.settings import SettingsError
from modelmesh.controller.kube import KubeApi
from modelmesh.controller.leader import LeaderElector
from modelmesh.controller.manager import Controller, ControllerStartError
from modelmesh.controller.meshclient import MeshClient
from modelmesh.controller.user_config import DEFAULTS, ConfigError, load_defaults_file
from modelmesh.controller.webhook import AdmissionWebhook
from modelmesh.lifecycle import StartupError
from modelmesh.observability.http import HttpEndpoint
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller")


async def kube_client(kubeconfig: str) -> k8s_client.ApiClient:
    """In-cluster service account, else KUBECONFIG / --kubeconfig (else ~/.kube/config)."""
    if kubeconfig:
        return await k8s_config.new_client_from_config(config_file=kubeconfig)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        conf = k8s_client.Configuration()
        k8s_config.load_incluster_config(client_configuration=conf)
        return k8s_client.ApiClient(conf)
    return await k8s_config.new_client_from_config()


async def open_mesh_store(files: dict[str, bytes]):
    """The mesh's etcd, from the etcd secret's files written to a private temp dir."""
    from modelmesh.kv import open_store

    directory = Path(tempfile.mkdtemp(prefix="modelmesh-etcd-"))
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
    store = await open_store(f"etcd:{directory / 'etcd_connection'}", None)
    await store.revision()  # reachable now, or fall back to polling
    return store


class ControllerApp(ObservedApp):
    def __init__(self, settings: ControllerSettings, mesh: MeshClient | None = None, host: str = "0.0.0.0") -> None:
        self.config_defaults = _config_defaults(settings)  # first: a broken file starts nothing
        super().__init__("controller", MetricsSpec(port=settings.metrics_port, scheme="http"), None, host)
        self.settings = settings
        self._mesh = mesh
        self.probe_endpoint = HttpEndpoint(host, settings.health_port)
        self.probe_endpoint.add_check("/healthz", lambda: not self._failed)
        self.probe_endpoint.add_check("/readyz", lambda: self.ready)
        self.endpoints.append(self.probe_endpoint)
        self._failed = False
        self._host = host
        self.api_client: k8s_client.ApiClient | None = None
        self.controller: Controller | None = None
        self.webhook: AdmissionWebhook | None = None
        self._elector: LeaderElector | None = None
        self._runner: asyncio.Task | None = None

    async def start_components(self) -> None:
        s = self.settings
        try:
            self.api_client = await kube_client(s.kubeconfig)
        except Exception as e:  # noqa: BLE001 - one clear line at start-up
            raise StartupError(f"cannot configure Kubernetes access: {e}") from None
        api = KubeApi(self.api_client)
        cert = Path(s.webhook_cert_dir) / "tls.crt"
        key = Path(s.webhook_cert_dir) / "tls.key"
        if s.webhook_identity() is not None:  # checked at start-up: both files, or neither
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert), str(key))
            self.webhook = AdmissionWebhook(self._host, s.webhook_port, ctx)
            await self.webhook.start()
        else:
            log.info("no webhook certificate, admission webhook off", cert_dir=s.webhook_cert_dir)
        self.controller = Controller(api, s, self.registry, mesh=self._mesh,
                                     kv_opener=open_mesh_store if s.watch_mesh_tables else None,
                                     config_defaults=self.config_defaults)
        identity = s.pod_name or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        if s.leader_elect:
            self._elector = LeaderElector(api, s.namespace, identity)
        self.ready = True  # a standby replica is healthy too
        self._runner = asyncio.create_task(self._run(), name="controller")

    async def _run(self) -> None:
        try:
            if self._elector is not None:
                await self._elector.acquire()
            await self.controller.start()
            if self._elector is not None:
                await self._elector.lost.wait()
                log.error("leadership lost, exiting so another replica takes over")
                self._failed = True
                self._done.set()
        except asyncio.CancelledError:
            raise
        except ControllerStartError as e:
            log.error("controller cannot start", error=str(e))
            self._failed = True
            self._done.set()
        except Exception as e:  # noqa: BLE001
            log.error("controller failed", error=repr(e))
            self._failed = True
            self._done.set()

    async def stop_components(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self.controller is not None:
            await self.controller.stop()
        if self._elector is not None:
            await self._elector.release()
        if self.webhook is not None:
            await self.webhook.stop()
        if self.api_client is not None:
            await self.api_client.close()


def _config_defaults(settings: ControllerSettings) -> dict:
    """The defaults under model-serving-config, read once at start (as the reference: an edited
    model-serving-config-defaults takes effect when the controller restarts). A broken file is
    a SettingsError: the CLI exits 2 with one line naming the file."""
    path = settings.config_defaults_file or DEFAULTS_FILE
    try:
        defaults = load_defaults_file(settings.config_defaults_file)
    except ConfigError as e:
        raise SettingsError(f"invalid config defaults (ConfigMap model-serving-config-defaults): {e}") from None
    log.info("config defaults", file=path, file_read=Path(path).is_file(), same_as_built_in=defaults == DEFAULTS)
    return defaults


def make_app(settings: ControllerSettings) -> ControllerApp:
    return ControllerApp(settings)
