"""Storage credentials only go to their own endpoint. A model's storage parameters may
override any field of a storage-config entry (bucket overrides keep working), but one that
points the entry at another endpoint is refused with a load error while the entry's
credentials would go along. A second, untrusted endpoint (a real HTTP server on loopback)
records everything it receives: it must receive nothing of the entry's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from harness.process import free_port
from storage_helpers import s3_config

from modelmesh.storage import PullInputError

BUCKET, OTHER_BUCKET = "creds-bkt", "creds-other-bkt"
SECRET_HEADER = "Bearer entry-s3cret"


class Recorder:
    """The untrusted endpoint: answers 200 to anything and remembers every request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                              "body": await request.read()})
        return web.Response(body=b"attacker-supplied model")


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def _key(storage_key: str, **params) -> str:
    return json.dumps({"storage_key": storage_key, "storage_params": params})


async def test_s3_endpoint_override_is_refused_and_bucket_override_works(layout, puller, s3_server, s3_seed,
                                                                           recorder):
    await s3_seed.put(BUCKET, {"m/model.bin": b"own"})
    await s3_seed.put(OTHER_BUCKET, {"m/model.bin": b"other bucket, same endpoint"})
    layout.write_config("mys3", s3_config(s3_server, bucket=BUCKET))

    with pytest.raises(PullInputError) as e:
        await puller.pull("moved", "m", _key("mys3", endpoint_url=recorder.url))
    message = str(e.value)
    assert "endpoint_url" in message and "access_key_id" in message and "'mys3'" in message
    assert s3_server.SECRET_KEY not in message
    with pytest.raises(PullInputError):  # a bare host:port is the same move
        await puller.pull("moved-bare", "m", _key("mys3", endpoint_url=recorder.url.removeprefix("http://")))
    assert recorder.requests == []
    assert layout.leftovers() == []

    pulled = await puller.pull("other-bucket", "m", _key("mys3", bucket=OTHER_BUCKET))
    assert (layout.root / "other-bucket" / "m" / "model.bin").read_bytes() == b"other bucket, same endpoint"
    assert pulled.model_id == "other-bucket"


async def test_http_url_override_is_refused_unless_the_parameters_bring_their_own_credentials(
        layout, puller, recorder):
    layout.write_config("web", {"type": "http", "url": f"{recorder.url}/own",
                                "headers": {"Authorization": SECRET_HEADER}})
    untrusted = f"http://localhost:{recorder.url.rsplit(':', 1)[1]}/elsewhere"  # another host name

    with pytest.raises(PullInputError, match="url.*headers"):
        await puller.pull("moved", "m.bin", _key("web", url=untrusted))
    with pytest.raises(PullInputError):  # adding a header of one's own does not drop the entry's
        await puller.pull("moved2", "m.bin", _key("web", url=untrusted, **{"headers.X-Own": "mine"}))
    assert recorder.requests == []

    # The parameters' own headers replace the entry's: nothing of the entry travels.
    await puller.pull("own-creds", "m.bin", _key("web", url=untrusted, headers={"X-Own": "mine"}))
    assert len(recorder.requests) == 1
    sent = recorder.requests[0]
    assert sent["path"] == "/elsewhere/m.bin" and sent["headers"].get("X-Own") == "mine"
    assert SECRET_HEADER not in json.dumps(sent["headers"])

    # Another path on the entry's own endpoint is not a move: its credentials go there, as configured.
    await puller.pull("same-host", "m.bin", _key("web", url=f"{recorder.url}/other/path"))
    assert recorder.requests[-1]["path"] == "/other/path/m.bin"
    assert recorder.requests[-1]["headers"]["Authorization"] == SECRET_HEADER


async def test_gcs_token_uri_and_azure_account_overrides_are_refused(layout, puller, recorder):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    layout.write_config("gcs", {"type": "gcs", "bucket": "b", "client_email": "sa@p.iam.gserviceaccount.com",
                                "private_key": pem})
    layout.write_config("az", {"type": "azure", "account_name": "victim", "container": "c",
                               "client_id": "id", "client_secret": "entra-s3cret", "tenant_id": "t"})
    cases = [("gcs", {"token_uri": f"{recorder.url}/token"}), ("gcs", {"endpoint_url": recorder.url}),
             ("az", {"endpoint_url": recorder.url}), ("az", {"authority_host": recorder.url}),
             ("az", {"account_name": "attacker"})]
    for entry, params in cases:
        with pytest.raises(PullInputError, match="only sent to its own endpoint"):
            await puller.pull("moved", "m", _key(entry, **params))
    assert recorder.requests == []
