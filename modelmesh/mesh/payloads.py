"""Payload processors (MM_PAYLOAD_PROCESSORS): copies of inference requests and responses,
sent off the hot path to a logger or to HTTP consumers as CloudEvents (binary mode: the raw
protobuf message is the body, the routing facts are `ce-*` headers).

URIs, space separated: `logger://` (structlog lines), `http://host:port/path`, `https://...`.
Events are queued (bounded) and sent by a background task; when the queue is full, events
are dropped and counted rather than slowing inference down.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.payloads")

QUEUE_SIZE = 1000
REQUEST_TYPE = "org.kserve.inference.request"
RESPONSE_TYPE = "org.kserve.inference.response"


@dataclass(frozen=True, slots=True)
class PayloadEvent:
    kind: str  # REQUEST_TYPE | RESPONSE_TYPE
    request_id: str
    model_id: str
    vmodel_id: str
    method: str
    status: str  # gRPC code name of the call ("OK" for requests)
    data: bytes
    at: float


class PayloadProcessors:
    def __init__(self, uris: tuple[str, ...], source: str, registry: CollectorRegistry) -> None:
        self.uris = uris
        self.source = source
        self._queue: asyncio.Queue[PayloadEvent] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self.dropped = Counter("modelmesh_payload_events_dropped", "Payload events dropped (queue full)",
                               registry=registry)
        self.failed = Counter("modelmesh_payload_events_failed", "Payload events a processor did not take",
                              registry=registry)

    def new_request_id(self) -> str:
        return uuid.uuid4().hex

    def submit(self, kind: str, request_id: str, model_id: str, vmodel_id: str, method: str, status: str,
               data: bytes) -> None:
        try:
            self._queue.put_nowait(PayloadEvent(kind, request_id, model_id, vmodel_id, method, status, data,
                                                time.time()))
        except asyncio.QueueFull:
            self.dropped.inc()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            for uri in self.uris:
                try:
                    await self._send(uri, event)
                except Exception as e:  # noqa: BLE001 - a consumer's failure never reaches inference
                    self.failed.inc()
                    log.warning("payload processor failed", processor=uri, error=str(e))

    async def _send(self, uri: str, e: PayloadEvent) -> None:
        if uri.startswith("logger://"):
            log.info("payload", type=e.kind, id=e.request_id, model_id=e.model_id, vmodel_id=e.vmodel_id,
                     method=e.method, status=e.status, data=base64.b64encode(e.data).decode())
            return
        assert self._session is not None
        headers = {
            "ce-specversion": "1.0", "ce-id": e.request_id, "ce-type": e.kind, "ce-source": self.source,
            "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at)),
            "ce-modelid": e.model_id, "ce-inferenceservicename": e.vmodel_id or e.model_id,
            "ce-endpoint": e.method, "ce-status": e.status, "content-type": "application/x-protobuf",
        }
        async with self._session.post(uri, data=e.data, headers=headers) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}")
