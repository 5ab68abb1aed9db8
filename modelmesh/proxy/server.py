"""The REST proxy component: an aiohttp site for the V2 routes over one gRPC channel.

One middleware does the cross-cutting work for every request: turns errors into
`{"error": ...}` bodies with the mapped status, counts and times requests for Prometheus,
and writes the access-log line when enabled.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelmesh.config.proxy import RestProxySettings
from modelmesh.observability.logging import get_logger
from modelmesh.observability.tls import server_ssl_context
from modelmesh.proxy.channel import ChannelSpec, ChannelUnavailable, GrpcChannel
from modelmesh.proxy.errors import ProxyError, error_response, from_grpc
from modelmesh.proxy.handlers import V2Handlers
from modelmesh.proxy.infer_codec import InvalidReply
from modelmesh.proxy.tensors import InvalidInput

log = get_logger("modelmesh.proxy")
access_log = get_logger("modelmesh.proxy.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("modelmesh_rest_proxy_requests", "REST requests by route and HTTP status",
                                ["route", "code"], registry=registry)
        self.duration = Histogram(
            "modelmesh_rest_proxy_request_duration_seconds", "REST request latency, end to end in the proxy",
            ["route"], registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.in_flight = Gauge("modelmesh_rest_proxy_requests_in_flight", "REST requests being served",
                               registry=registry)
        # Labelled children, bound once: .labels() takes a lock and builds a key per call.
        self._counters: dict[tuple[str, int], Counter] = {}
        self._timers: dict[str, Histogram] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((route, status))
        if counter is None:
            counter = self._counters[(route, status)] = self.requests.labels(route, str(status))
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.duration.labels(route)
        counter.inc()
        timer.observe(seconds)


def channel_spec(settings: RestProxySettings) -> ChannelSpec:
    return ChannelSpec(
        host=settings.grpc_host, port=settings.grpc_port, max_msg_size=settings.grpc_max_msg_size,
        use_tls=settings.use_tls, skip_verify=settings.skip_verify, ca_path=settings.grpc_ca_path,
        server_name=settings.grpc_server_name, client_cert_path=settings.tls_cert_path,
        client_key_path=settings.tls_key_path,
    )


class RestProxy:
    """`reuse_port`: several processes listen on the same port (SO_REUSEPORT), the kernel
    spreads connections over them (REST_PROXY_WORKERS)."""

    def __init__(self, settings: RestProxySettings, registry: CollectorRegistry, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        self.host = settings.listen_host
        self.port = settings.listen_port
        self.channel = GrpcChannel(channel_spec(settings))
        self.metrics = ProxyMetrics(registry)
        self.app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[self._observe])
        V2Handlers(self.channel, settings.max_request_bytes).add_routes(self.app)
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.settings.tls_cert_path else "http"

    async def start(self) -> None:
        ssl_ctx = None
        if self.settings.tls_cert_path:
            tls = self.settings.https_tls()
            ssl_ctx = server_ssl_context(self.settings.tls_cert_path, self.settings.tls_key_path,
                                         tls.client_auth, tls.roots)
        # In-flight requests get a few seconds to finish on stop (the process budget is 30 s).
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=10)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_ctx, reuse_address=True,
                           reuse_port=self.reuse_port or None)
        try:
            await site.start()
        except OSError as e:
            await self.stop()
            raise OSError(e.errno, f"cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        if self.port == 0:  # report the port the OS chose
            self.port = self._runner.addresses[0][1]
        log.info("rest proxy listening", host=self.host, port=self.port, scheme=self.scheme,
                 grpc_target=self.channel.spec.target, grpc_tls=self.channel.spec.use_tls)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.channel.close()

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            response = await _answer(request, handler)
        finally:
            self.metrics.in_flight.dec()
        elapsed = time.perf_counter() - start
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        self.metrics.observe(route, response.status, elapsed)
        if self.settings.access_log:
            access_log.info("request", method=request.method, path=request.path, status=response.status,
                            duration_ms=round(elapsed * 1000, 3), bytes_in=request.content_length or 0,
                            bytes_out=len(response.body) if isinstance(response, web.Response)
                            and isinstance(response.body, bytes) else None,
                            remote=request.remote)
        return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except InvalidInput as e:
        return error_response(400, str(e))
    except ProxyError as e:
        return error_response(e.status, e.message)
    except grpc.aio.AioRpcError as e:
        err = from_grpc(e)
        return error_response(err.status, err.message)
    except InvalidReply as e:
        return error_response(502, str(e))
    except ChannelUnavailable as e:
        return error_response(503, str(e))
    except web.HTTPException as e:
        # aiohttp's own 404/405/413: same JSON shape as every other error.
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return error_response(e.status, e.text or e.reason, headers)
    except Exception:
        log.exception("unhandled error", path=request.path)
        return error_response(500, "internal error in the REST proxy")
