"""azure against azurite: connection string and account key (Shared Key), wrong key,
prefix semantics, missing container, ranged download, odd names; Entra ID client secret
against azurite over TLS with OAuth checks on."""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from modelmesh.storage import PullError, PullInputError
from modelmesh.storage.providers.azure_auth import AzureAccount, shared_key_headers
from modelmesh.storage.providers.base import TransferTuning

CONTAINER = "models"
BIG = os.urandom(2 * 1024 * 1024 + 11)
OCTETS = "application/octet-stream"  # aiohttp adds it to a PUT; it is part of the signature


async def _put(azurite, objects: dict[str, bytes], ssl_ctx: ssl.SSLContext | bool = True) -> None:
    account = AzureAccount(azurite.ACCOUNT, azurite.endpoint, key=azurite.KEY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx)) as s:
        url = f"{azurite.endpoint}/{CONTAINER}?restype=container"
        h = shared_key_headers(account, "PUT", url, {"Content-Length": "0", "Content-Type": OCTETS})
        async with s.put(URL(url, encoded=True), headers=h) as r:
            assert r.status in (201, 409), await r.text()
        for name, body in objects.items():
            url = f"{azurite.endpoint}/{CONTAINER}/{quote(name, safe='/~')}"
            h = shared_key_headers(account, "PUT", url, {"Content-Length": str(len(body)), "Content-Type": OCTETS,
                                                         "x-ms-blob-type": "BlockBlob"})
            async with s.put(URL(url, encoded=True), headers=h, data=body) as r:
                assert r.status == 201, await r.text()


@pytest.fixture(scope="module")
async def azure(azurite):
    await _put(azurite, {
        "models/mnist/model.onnx": b"onnx" * 10,
        "models/mnist/1/w.bin": b"w" * 300,
        "models/mnist2/x": b"other",
        "models/big.bin": BIG,
        "schemas/s.json": b"{}",
        "weird/a b+c%.txt": b"odd name",
    })
    return azurite


async def test_connection_string(layout, puller, azure):
    layout.write_config("az", {"type": "azure", "container": CONTAINER, "connection_string": azure.connection_string})
    pulled = await puller.pull("a1", "models/mnist", '{"storage_key": "az", "schema_path": "schemas/s.json"}')
    model = Path(pulled.local_path)
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*")) == ["1", "1/w.bin", "model.onnx"]
    assert pulled.disk_size_bytes == 342


async def test_account_key_ranged_and_odd_names(layout, azure):
    layout.write_config("az", {"type": "azure", "container": CONTAINER, "account_name": azure.ACCOUNT,
                               "account_key": azure.KEY, "endpoint_url": azure.endpoint})
    puller = layout.puller(tuning=TransferTuning(concurrency=4, part_size=512 * 1024))
    try:
        big = await puller.pull("big", "models/big.bin", '{"storage_key": "az"}')
        odd = await puller.pull("odd", "weird", '{"storage_key": "az"}')
    finally:
        await puller.close()
    assert Path(big.local_path).read_bytes() == BIG
    assert (Path(odd.local_path) / "a b+c%.txt").read_bytes() == b"odd name"


async def test_wrong_key_empty_prefix_missing_container(layout, puller, azure):
    wrong = azure.connection_string.replace(azure.KEY, "d3JvbmcK" * 11)
    layout.write_config("wrong", {"type": "azure", "container": CONTAINER, "connection_string": wrong})
    with pytest.raises(PullError, match=r"azure container 'models': HTTP 403 .*AuthorizationFailure|HTTP 403"):
        await puller.pull("a", "models/mnist", '{"storage_key": "wrong"}')
    layout.write_config("az", {"type": "azure", "container": CONTAINER, "connection_string": azure.connection_string})
    with pytest.raises(PullError, match="no objects found under 'models/mnis' in azure container 'models'"):
        await puller.pull("a", "models/mnis", '{"storage_key": "az"}')
    with pytest.raises(PullError, match="HTTP 404.*ContainerNotFound"):
        await puller.pull("a", "x", '{"storage_key": "az", "storage_params": {"container": "nope"}}')
    assert layout.leftovers() == []


async def test_config_errors(layout, puller):
    layout.write_config("a", {"type": "azure", "container": "c"})
    with pytest.raises(PullInputError, match="needs 'account_name' or 'connection_string'"):
        await puller.pull("a", "x", '{"storage_key": "a"}')
    layout.write_config("b", {"type": "azure", "container": "c", "account_name": "n", "client_id": "i"})
    with pytest.raises(PullInputError, match="all of client_id, client_secret and tenant_id"):
        await puller.pull("a", "x", '{"storage_key": "b"}')


class EntraAuthority:
    """Client-credentials token endpoint standing in for login.microsoftonline.com (which
    cannot be reached here). Azurite in `--oauth basic` mode checks the token's issuer,
    audience and lifetime, so the token it mints is what Entra ID would issue, unsigned."""

    def __init__(self, tenant: str, client_id: str, secret: str) -> None:
        self.tenant, self.client_id, self.secret = tenant, client_id, secret
        self.requests = 0

    async def token(self, request):
        from aiohttp import web

        self.requests += 1
        form = await request.post()
        if request.match_info["tenant"] != self.tenant or form.get("client_secret") != self.secret \
                or form.get("client_id") != self.client_id or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        assert form["scope"] == "https://storage.azure.com/.default"
        now = int(time.time())
        claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{self.tenant}/",
                  "iat": now, "nbf": now - 60, "exp": now + 3600, "appid": self.client_id}
        b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
        return web.json_response({"access_token": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
                                  "expires_in": 3599, "token_type": "Bearer"})


@pytest.fixture(scope="module")
async def azurite_oauth(tmp_path_factory, certs):
    from aiohttp import web
    from harness.azurite import AzuriteServer
    from harness.process import free_port

    svc = AzuriteServer(tmp_path_factory.mktemp("azurite-oauth"), tls=(certs.server_cert, certs.server_key)).start()
    authority = EntraAuthority("tenant-1", "app-1", "s3cret")
    app = web.Application()
    app.router.add_post("/{tenant}/oauth2/v2.0/token", authority.token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield svc, authority, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        svc.stop()


async def test_entra_client_secret_over_tls(layout, puller, azurite_oauth, certs):
    svc, authority, authority_url = azurite_oauth
    ssl_ctx = ssl.create_default_context(cadata=certs.ca_pem)
    await _put(svc, {"m/w.bin": b"entra"}, ssl_ctx)
    cfg = {"type": "azure", "container": CONTAINER, "account_name": svc.ACCOUNT, "endpoint_url": svc.endpoint,
           "certificate": certs.ca_pem, "authority_host": authority_url,
           "client_id": "app-1", "client_secret": "s3cret", "tenant_id": "tenant-1"}
    layout.write_config("entra", cfg)
    pulled = await puller.pull("e", "m", '{"storage_key": "entra"}')
    assert (Path(pulled.local_path) / "w.bin").read_bytes() == b"entra"
    await puller.pull("e2", "m/w.bin", '{"storage_key": "entra"}')
    assert authority.requests == 1  # the token is cached until near expiry

    layout.write_config("bad", {**cfg, "client_secret": "wrong"})
    with pytest.raises(PullError, match=r"token request to .*tenant-1/oauth2/v2.0/token: HTTP 401"):
        await puller.pull("b", "m", '{"storage_key": "bad"}')
    layout.write_config("untrusted", {k: v for k, v in cfg.items() if k != "certificate"})
    with pytest.raises(PullError, match="TLS error"):
        await puller.pull("u", "m", '{"storage_key": "untrusted"}')
    assert sorted(os.listdir(layout.root)) == [".pulling", "e", "e2"] and not os.listdir(layout.root / ".pulling")
