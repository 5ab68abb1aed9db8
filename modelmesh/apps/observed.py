"""The observability surface every long-running mode serves: metrics and probes."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge

from modelmesh import __version__
from modelmesh.config.common import MetricsSpec
from modelmesh.observability.http import HttpEndpoint
from modelmesh.observability.tls import server_ssl_context


class ObservedApp:
    """Base for apps: owns the registry, a metrics endpoint and a probe endpoint.

    Subclasses add their components in `start_components` / `stop_components` and flip
    `ready` once they can serve.
    """

    def __init__(self, mode: str, metrics: MetricsSpec, probe_port: int | None, host: str = "0.0.0.0") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        info = Gauge("modelmesh_build_info", "Build information", ["version", "mode"], registry=self.registry)
        info.labels(__version__, mode).set(1)
        self.ready = False
        self._done = asyncio.Event()
        self.endpoints: list[HttpEndpoint] = []
        self.metrics_endpoint: HttpEndpoint | None = None
        self.probe_endpoint: HttpEndpoint | None = None
        if metrics.enabled:
            ssl_ctx = server_ssl_context() if metrics.scheme == "https" else None
            self.metrics_endpoint = HttpEndpoint(host, metrics.port, ssl_ctx)
            self.metrics_endpoint.add_metrics(self.registry)
            self.endpoints.append(self.metrics_endpoint)
        if probe_port is not None:
            self.probe_endpoint = HttpEndpoint(host, probe_port)
            self.probe_endpoint.add_check("/live", lambda: True)
            self.probe_endpoint.add_check("/ready", lambda: self.ready)
            self.endpoints.append(self.probe_endpoint)

    async def start(self) -> None:
        for ep in self.endpoints:
            await ep.start()
        await self.start_components()

    async def stop(self) -> None:
        self.ready = False
        try:
            await self.stop_components()
        finally:
            for ep in reversed(self.endpoints):
                await ep.stop()

    async def wait_done(self) -> None:
        await self._done.wait()

    async def start_components(self) -> None:
        pass

    async def stop_components(self) -> None:
        pass
