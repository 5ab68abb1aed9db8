"""The shutdown order of a runtime pod, the mesh's side (MM_PRESTOP_WAIT_PORT, default 8090).

Kubernetes runs the preStop hooks of all of a pod's containers at once and stops each
container as soon as its own hook returns. The model server and the adapter/puller must
outlive the mesh, which keeps routing to them, and unloading from them, while it hands its
models to other pods. So their hook is `GET /prestop` here, which this gate holds open until
the mesh is about to exit (as the reference's RuntimeContainersPreStopServer does).

The mesh container's own hook (`/opt/kserve/mmesh/stop.sh wait`, i.e. `modelmesh runtime stop
--wait`) sends `POST /stop?wait=true`, which starts the graceful shutdown (the same as
SIGTERM) and is held like /prestop. Only a process in the pod itself may ask that: /stop
answers 403 to any peer that is not on the loopback interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

from aiohttp import web

from modelmesh.observability.http import HttpEndpoint
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.prestop")

PRESTOP_PATH = "/prestop"
STOP_PATH = "/stop"


def is_loopback(peer: str | None) -> bool:
    try:
        addr = ipaddress.ip_address((peer or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class PreStopGate:
    """Holds colocated containers' preStop requests until `release()`."""

    def __init__(self, port: int, request_stop: Callable[[], None], max_hold_s: float,
                 host: str = "0.0.0.0") -> None:
        self._request_stop = request_stop
        self._max_hold_s = max_hold_s
        self._released = asyncio.Event()
        self._held = 0
        self.endpoint = HttpEndpoint(host, port)
        self.endpoint.app.router.add_get(PRESTOP_PATH, self._prestop)
        self.endpoint.app.router.add_post(STOP_PATH, self._stop)

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def held(self) -> int:
        """Requests waiting now."""
        return self._held

    async def start(self) -> None:
        await self.endpoint.start()
        log.info("preStop gate listening", port=self.endpoint.port)

    def release(self) -> None:
        """The mesh is about to exit: let the colocated containers stop."""
        if not self._released.is_set():
            log.info("preStop gate released", waiting=self._held)
            self._released.set()

    async def stop(self) -> None:
        self.release()
        await self.endpoint.stop()

    async def _hold(self, who: str) -> web.Response:
        self._held += 1
        log.info("preStop request held until the mesh is about to exit", caller=who,
                 max_hold_s=self._max_hold_s)
        try:
            await asyncio.wait_for(self._released.wait(), self._max_hold_s)
        except asyncio.TimeoutError:
            log.warning("preStop request released on timeout", caller=who, max_hold_s=self._max_hold_s)
        finally:
            self._held -= 1
        return web.Response(text="mesh stopped\n")

    async def _prestop(self, request: web.Request) -> web.Response:
        return await self._hold(request.remote or "?")

    async def _stop(self, request: web.Request) -> web.Response:
        if not is_loopback(request.remote):
            return web.Response(status=403, text="only a process in this pod may stop the mesh\n")
        log.info("shutdown requested over HTTP", caller=request.remote)
        self._request_stop()
        if request.query.get("wait", "").lower() in ("1", "true", "yes"):
            return await self._hold(f"stop {request.remote}")
        return web.Response(status=202, text="shutdown started\n")
