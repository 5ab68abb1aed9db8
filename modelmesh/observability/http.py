"""A small aiohttp server for /metrics and health probes.

Each app owns its own prometheus CollectorRegistry (no global registry), so several
components - or several instances in one test process - never share counters.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

Check = Callable[[], bool | Awaitable[bool]]


class HttpEndpoint:
    """One aiohttp site; routes are added before `start()`."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self.app = web.Application()
        self._runner: web.AppRunner | None = None

    def add_metrics(self, registry: CollectorRegistry, path: str = "/metrics",
                    before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Serve `registry`; `before` runs ahead of each exposition (collectors whose data
        must be fetched, e.g. scraped from other processes, fetch it there)."""
        expose = make_aiohttp_handler(registry, disable_compression=False)
        if before is None:
            self.app.router.add_get(path, expose)
            return

        async def handler(request: web.Request) -> web.StreamResponse:
            await before()
            return await expose(request)

        self.app.router.add_get(path, handler)

    def add_check(self, path: str, check: Check) -> None:
        async def handler(_request: web.Request) -> web.Response:
            ok = check()
            if isinstance(ok, Awaitable):
                ok = await ok
            return web.Response(status=200 if ok else 503, text="ok" if ok else "not ready")

        self.app.router.add_get(path, handler)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(e.errno, f"cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        if self.port == 0:  # report the port the OS chose
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
