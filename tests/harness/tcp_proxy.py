"""A loopback TCP proxy that a test can cut and restore: a network partition between one
client and a real server, without stopping the server (fault injection only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from harness.process import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1",
                 upstream_tap: Callable[[], Callable[[bytes], None]] | None = None) -> None:
        """`upstream_tap`, when given, makes per connection a function that sees every
        chunk the client sends (a test's observer of the wire)."""
        self.target = (target_host, target_port)
        self._upstream_tap = upstream_tap
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))

        tap = self._upstream_tap() if self._upstream_tap is not None else None

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, tap=None) -> None:
            try:
                while data := await r.read(65536):
                    if tap is not None:
                        tap(data)
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                w.transport.abort()
                self._writers.discard(w)

        try:
            await asyncio.gather(pump(client_r, server_w, tap), pump(server_r, client_w))
        except asyncio.CancelledError:
            # The loop is shutting down under an open connection: just drop it.
            client_w.transport.abort()
            server_w.transport.abort()
