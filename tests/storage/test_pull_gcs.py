"""gcs against the GCS emulator (JSON API). The emulator does not check credentials, so the
service-account token exchange is tested against an in-test OAuth token endpoint (Google's
cannot run here) that verifies the signed JWT with the account's public key."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from harness.process import free_port

from modelmesh.storage import PullError, PullInputError
from modelmesh.storage.providers.base import TransferTuning

BUCKET = "gcs-models"


async def _put(endpoint: str, bucket: str, objects: dict[str, bytes]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{endpoint}/storage/v1/b", params={"project": "p"}, json={"name": bucket}) as r:
            assert r.status in (200, 409), await r.text()
        for name, body in objects.items():
            url = f"{endpoint}/upload/storage/v1/b/{bucket}/o"
            async with s.post(url, params={"uploadType": "media", "name": name}, data=body) as r:
                assert r.status == 200, await r.text()


@pytest.fixture(scope="module")
async def gcs(gcs_emulator):
    await _put(gcs_emulator.endpoint, BUCKET, {
        "models/mnist/model.onnx": b"onnx" * 10,
        "models/mnist/1/w.bin": b"w" * 300,
        "models/mnist2/x": b"other",
        "models/big.bin": BIG,
        "schemas/s.json": b"{}",
        "weird/a b+c%.txt": b"odd name",
    })
    return gcs_emulator.endpoint


BIG = os.urandom(3 * 1024 * 1024 + 7)


async def test_directory_model_schema_and_prefix(layout, puller, gcs):
    layout.write_config("g", {"type": "gcs", "bucket": BUCKET, "endpoint_url": gcs})
    pulled = await puller.pull("g1", "models/mnist", '{"storage_key": "g", "schema_path": "schemas/s.json"}')
    model = Path(pulled.local_path)
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*")) == ["1", "1/w.bin", "model.onnx"]
    assert pulled.disk_size_bytes == 40 + 300 + 2 and Path(pulled.schema_path).read_bytes() == b"{}"


async def test_ranged_download_and_odd_names(layout, gcs):
    layout.write_config("g", {"type": "gcs", "bucket": BUCKET, "endpoint_url": gcs})
    puller = layout.puller(tuning=TransferTuning(concurrency=4, part_size=1024 * 1024))
    try:
        big = await puller.pull("big", "models/big.bin", '{"storage_key": "g"}')
        odd = await puller.pull("odd", "weird", '{"storage_key": "g"}')
    finally:
        await puller.close()
    assert Path(big.local_path).read_bytes() == BIG
    assert (Path(odd.local_path) / "a b+c%.txt").read_bytes() == b"odd name"


async def test_empty_prefix_and_missing_bucket(layout, puller, gcs):
    layout.write_config("g", {"type": "gcs", "bucket": BUCKET, "endpoint_url": gcs})
    with pytest.raises(PullError, match="no objects found under 'models/mnis' in gcs bucket 'gcs-models'"):
        await puller.pull("g", "models/mnis", '{"storage_key": "g"}')
    with pytest.raises(PullError, match="gcs bucket 'nope': HTTP 404"):
        await puller.pull("g", "x", '{"storage_key": "g", "storage_params": {"bucket": "nope"}}')
    assert layout.leftovers() == []


class TokenEndpoint:
    """OAuth2 JWT-bearer token endpoint: verifies the assertion's RS256 signature and claims."""

    def __init__(self, public_key, email: str) -> None:
        self.public_key, self.email = public_key, email
        self.grants: list[dict] = []
        self.reject = False

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        header, claims, sig = form["assertion"].split(".")
        pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        self.public_key.verify(pad(sig), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        body = json.loads(pad(claims))
        self.grants.append(body)
        if self.reject or body["iss"] != self.email:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"})


@pytest.fixture
async def token_endpoint():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    ep = TokenEndpoint(key.public_key(), "puller@proj.iam.gserviceaccount.com")
    app = web.Application()
    app.router.add_post("/token", ep.token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield ep, pem, f"http://127.0.0.1:{port}/token"
    await runner.cleanup()


async def test_service_account_token_is_fetched_once_and_reused(layout, puller, gcs, token_endpoint):
    ep, pem, uri = token_endpoint
    layout.write_config("sa", {"type": "gcs", "bucket": BUCKET, "endpoint_url": gcs, "client_email": ep.email,
                               "private_key": pem, "token_uri": uri})
    await puller.pull("a", "models/mnist", '{"storage_key": "sa"}')
    await puller.pull("b", "schemas/s.json", '{"storage_key": "sa"}')
    assert len(ep.grants) == 1
    assert ep.grants[0]["aud"] == uri and ep.grants[0]["scope"].endswith("devstorage.read_only")


async def test_rejected_credentials_clear_error(layout, puller, gcs, token_endpoint):
    ep, pem, uri = token_endpoint
    ep.reject = True
    layout.write_config("sa", {"type": "gcs", "bucket": BUCKET, "endpoint_url": gcs, "client_email": ep.email,
                               "private_key": pem, "token_uri": uri})
    with pytest.raises(PullError, match=r"token request to .*: HTTP 400 Bad Request: .*invalid_grant"):
        await puller.pull("a", "models/mnist", '{"storage_key": "sa"}')
    layout.write_config("bad", {"type": "gcs", "bucket": BUCKET, "client_email": "x", "private_key": "garbage"})
    with pytest.raises(PullInputError, match="'private_key' is not a usable PEM private key"):
        await puller.pull("a", "models/mnist", '{"storage_key": "bad"}')
    assert layout.leftovers() == []
