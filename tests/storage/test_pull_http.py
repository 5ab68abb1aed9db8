"""http(s) against an in-process aiohttp server with self-signed certificates (CA, server
and client certs made with openssl): headers, CA, client certificate, non-2xx, retries."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
from aiohttp import web
from harness.process import free_port

from modelmesh.storage import PullError
from modelmesh.storage.retry import RetryPolicy

MODEL = b"\x89model-bytes" * 1000


class ModelHost:
    """The model host. Its /flaky route fails with 503 a set number of times to inject
    transient faults (a real server cannot be told to fail on cue)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.flaky_failures = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/models/{name}", self.model)
        app.router.add_get("/flaky/{name}", self.flaky)
        app.router.add_get("/private/{name}", self.private)
        return app

    async def model(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        if request.match_info["name"] != "m.bin":
            return web.Response(status=404, text="no such model")
        return web.Response(body=MODEL)

    async def flaky(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        if self.flaky_failures > 0:
            self.flaky_failures -= 1
            return web.Response(status=503, text="busy")
        return web.Response(body=MODEL)

    async def private(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.Response(status=401, text="who are you")
        return web.Response(body=MODEL)


async def _serve(host: ModelHost, ssl_ctx: ssl.SSLContext | None):
    runner = web.AppRunner(host.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_ctx).start()
    return runner, port


@pytest.fixture
async def https_host(certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    host = ModelHost()
    runner, port = await _serve(host, ctx)
    yield host, f"https://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def mtls_host(certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    ctx.load_verify_locations(cadata=certs.ca_pem)
    ctx.verify_mode = ssl.CERT_REQUIRED
    host = ModelHost()
    runner, port = await _serve(host, ctx)
    yield host, f"https://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def http_host():
    host = ModelHost()
    runner, port = await _serve(host, None)
    yield host, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_https_with_custom_ca_and_headers(layout, puller, https_host, certs):
    _, url = https_host
    layout.write_config("web", {"type": "https", "url": url, "certificate": certs.ca_pem,
                                "headers": {"Authorization": "Bearer s3cret"}})
    pulled = await puller.pull("p", "private/m.bin", '{"storage_key": "web"}')
    assert Path(pulled.local_path).read_bytes() == MODEL
    assert pulled.local_path == str(layout.root / "p" / "m.bin") and pulled.disk_size_bytes == len(MODEL)


async def test_header_override_via_dotted_storage_params(layout, puller, https_host, certs):
    _, url = https_host
    layout.write_config("web", {"type": "http", "url": url, "certificate": certs.ca_pem,
                                "headers": {"Authorization": "Bearer wrong"}})
    with pytest.raises(PullError, match=r"HTTP 401 Unauthorized: who are you \(check the storage config"):
        await puller.pull("p", "private/m.bin", '{"storage_key": "web"}')
    key = {"storage_key": "web", "storage_params": {"headers.Authorization": "Bearer s3cret"}}
    pulled = await puller.pull("p", "private/m.bin", json.dumps(key))
    assert Path(pulled.local_path).read_bytes() == MODEL


async def test_untrusted_certificate_is_refused(layout, puller, https_host):
    _, url = https_host
    layout.write_config("web", {"type": "http", "url": url})
    with pytest.raises(PullError, match="TLS error"):
        await puller.pull("p", "models/m.bin", '{"storage_key": "web"}')
    assert layout.leftovers() == []


async def test_client_certificate(layout, puller, mtls_host, certs):
    _, url = mtls_host
    layout.write_config("nocert", {"type": "http", "url": url, "certificate": certs.ca_pem})
    with pytest.raises(PullError):
        await puller.pull("p", "models/m.bin", '{"storage_key": "nocert"}')
    layout.write_config("cert", {"type": "http", "url": url, "certificate": certs.ca_pem,
                                 "client_certificate": certs.client_cert_pem, "client_key": certs.client_key_pem})
    pulled = await puller.pull("p", "models/m.bin", '{"storage_key": "cert"}')
    assert Path(pulled.local_path).read_bytes() == MODEL


async def test_404_is_an_error_not_a_model(layout, puller, http_host):
    host, url = http_host
    layout.write_config("web", {"type": "http", "url": url})
    with pytest.raises(PullError, match=r"GET http://127\.0\.0\.1:\d+/models/gone\.bin: HTTP 404 Not Found: no such"):
        await puller.pull("p", "models/gone.bin", '{"storage_key": "web"}')
    assert len(host.requests) == 1  # 4xx is not retried
    assert layout.leftovers() == []


async def test_transient_503_is_retried(layout, http_host):
    host, url = http_host
    layout.write_config("web", {"type": "http", "url": url})
    puller = layout.puller(retry=RetryPolicy(attempts=3, base_delay_s=0.01))
    try:
        host.flaky_failures = 2
        pulled = await puller.pull("p", "flaky/m.bin", '{"storage_key": "web"}')
        assert Path(pulled.local_path).read_bytes() == MODEL and len(host.requests) == 3
        host.flaky_failures = 5
        with pytest.raises(PullError, match=r"HTTP 503 Service Unavailable: busy \(gave up after 3 attempts\)"):
            await puller.pull("q", "flaky/m.bin", '{"storage_key": "web"}')
    finally:
        await puller.close()
    assert not (layout.root / "q").exists()


async def test_connection_refused_is_retried_then_reported(layout):
    layout.write_config("web", {"type": "http", "url": f"http://127.0.0.1:{free_port()}"})
    puller = layout.puller(retry=RetryPolicy(attempts=2, base_delay_s=0.01))
    try:
        with pytest.raises(PullError, match="gave up after 2 attempts"):
            await puller.pull("p", "m.bin", '{"storage_key": "web"}')
    finally:
        await puller.close()
    assert layout.leftovers() == []


async def test_bad_url_is_invalid_input(layout, puller):
    layout.write_config("web", {"type": "http", "url": "ftp://x"})
    with pytest.raises(ValueError, match="must be http"):
        await puller.pull("p", "m.bin", '{"storage_key": "web"}')
