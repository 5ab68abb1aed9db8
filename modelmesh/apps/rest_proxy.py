"""`modelmesh runtime rest-proxy`: the KServe V2 REST -> gRPC proxy of a runtime pod.

With REST_PROXY_WORKERS=N > 1 this process serves the port itself and starts N-1 worker
processes (`python -m modelmesh.apps.rest_proxy`) that listen on the same port with
SO_REUSEPORT, so the proxy uses up to N cores. The first process owns the workers: it stops
them on shutdown, and ends (exit 1) if one of them dies, so the pod restarts whole.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
from collections.abc import Mapping

from modelmesh.apps.observed import ObservedApp
from modelmesh.config.common import MetricsSpec
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import fields_of
from modelmesh.observability.logging import get_logger
from modelmesh.proxy.server import RestProxy

log = get_logger("modelmesh.rest_proxy")

# Set in a worker's env: the pid of the first process, which the worker must not outlive.
WORKER_OF_ENV = "MM_REST_PROXY_WORKER_OF"


class RestProxyApp(ObservedApp):
    """The proxy plus its own /metrics (REST_PROXY_METRICS_PORT, off when 0)."""

    def __init__(self, settings: RestProxySettings, worker: bool = False) -> None:
        metrics_on = settings.metrics_port > 0 and not worker
        metrics = MetricsSpec(enabled=metrics_on, port=settings.metrics_port, scheme="http")
        super().__init__("runtime-rest-proxy", metrics, None, host=settings.listen_host)
        self.settings = settings
        self.proxy = RestProxy(settings, self.registry, reuse_port=settings.workers > 1)
        self.workers = WorkerProcesses(settings) if settings.workers > 1 and not worker else None

    async def start_components(self) -> None:
        await self.proxy.start()
        if self.workers is not None:
            await self.workers.start(self.proxy.port)
        self.ready = True

    async def stop_components(self) -> None:
        try:
            if self.workers is not None:
                await self.workers.stop()
        finally:
            await self.proxy.stop()

    async def wait_done(self) -> None:
        if self.workers is None:
            await super().wait_done()
            return
        await self.workers.wait_first_exit()


def settings_env(settings: RestProxySettings) -> dict[str, str]:
    """The settings as the env vars they were read from (flags included), for a worker."""
    out = {}
    for f, meta, _ in fields_of(type(settings)):
        value = getattr(settings, f.name)
        out[meta.env] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


class WorkerProcesses:
    """REST_PROXY_WORKERS - 1 processes serving the same port as this one."""

    def __init__(self, settings: RestProxySettings, stop_timeout_s: float = 20) -> None:
        self.settings = settings
        self.stop_timeout_s = stop_timeout_s
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, port: int) -> None:
        env = {**os.environ, **settings_env(self.settings), "REST_PROXY_LISTEN_PORT": str(port),
               "REST_PROXY_METRICS_PORT": "0", WORKER_OF_ENV: str(os.getpid())}
        for _ in range(self.settings.workers - 1):
            # Own session: a terminal's Ctrl-C reaches only this process, which then stops them
            # (one signal each, not two); they still die with it (PR_SET_PDEATHSIG).
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "modelmesh.apps.rest_proxy", env=env,
                                                        start_new_session=True)
            self.procs.append(proc)
        log.info("rest proxy workers started", workers=self.settings.workers, pids=[p.pid for p in self.procs])

    async def wait_first_exit(self) -> None:
        waits = [asyncio.ensure_future(p.wait()) for p in self.procs]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        proc = self.procs[waits.index(next(iter(done)))]
        raise RuntimeError(f"rest proxy worker {proc.pid} exited with code {proc.returncode}")

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
            except TimeoutError:
                log.warning("rest proxy worker did not stop, killing it", pid=proc.pid)
                proc.kill()
                await proc.wait()
        self.procs.clear()


def _die_with_parent(parent_pid: int) -> None:
    """A worker gets SIGTERM when the first process dies, even by SIGKILL (Linux prctl)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_main(env: Mapping[str, str] | None = None) -> int:
    from modelmesh import lifecycle
    from modelmesh.config.settings import load_settings
    from modelmesh.observability.logging import configure_logging

    env = os.environ if env is None else env
    settings = load_settings(RestProxySettings, env)
    configure_logging(settings.effective_level, settings.effective_format)
    _die_with_parent(int(env[WORKER_OF_ENV]))
    return lifecycle.run(lambda: RestProxyApp(settings, worker=True), shutdown_timeout_s=30)


def make_app(settings: RestProxySettings) -> RestProxyApp:
    return RestProxyApp(settings)


if __name__ == "__main__":
    sys.exit(worker_main())
