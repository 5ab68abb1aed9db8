"""azure against azurite: connection string and account key (Shared Key), wrong key,
prefix semantics, missing container, ranged download, odd names."""

from __future__ import annotations

import os
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


async def _put(azurite, objects: dict[str, bytes]) -> None:
    account = AzureAccount(azurite.ACCOUNT, azurite.endpoint, key=azurite.KEY)
    async with aiohttp.ClientSession() as s:
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
