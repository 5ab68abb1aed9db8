"""s3 against a real S3 endpoint (moto server): layouts, prefix semantics, schema, huge
listings, errors, wrong credentials, custom CA over TLS, client reuse, cancellation."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from harness import tools
from harness.process import ManagedProcess, free_port, port_open
from storage_helpers import S3Seeder, s3_config

from modelmesh.storage import PullError
from modelmesh.storage.providers.base import TransferTuning
from modelmesh.storage.retry import RetryPolicy

BUCKET = "models-bkt"


@pytest.fixture(scope="module")
async def seeded(s3_seed: S3Seeder):
    await s3_seed.put(BUCKET, {
        "models/mnist/model.onnx": b"onnx" * 100,
        "models/mnist/1/data.bin": b"d" * 2000,
        "models/mnist/": b"",  # folder marker: skipped
        "models/mnist/empty": b"",  # zero-size: skipped
        "models/mnist2/other.bin": b"never pulled",
        "models/single.onnx": b"single-file-model",
        "schemas/mnist.json": b'{"inputs": []}',
    })
    return BUCKET


async def test_directory_model_with_schema(layout, puller, s3_server, seeded):
    layout.write_config("mys3", s3_config(s3_server, bucket=seeded))
    key = {"storage_key": "mys3", "schema_path": "schemas/mnist.json", "model_type": "onnx", "keep": [1]}
    pulled = await puller.pull("mnist-1", "models/mnist", json.dumps(key))
    model = layout.root / "mnist-1" / "mnist"
    assert pulled.local_path == str(model)
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*")) == ["1", "1/data.bin", "model.onnx"]
    assert (model / "model.onnx").read_bytes() == b"onnx" * 100
    assert Path(pulled.schema_path).read_bytes() == b'{"inputs": []}'
    assert pulled.disk_size_bytes == 400 + 2000 + 14
    assert pulled.model_key == {"schema_path": str(layout.root / "mnist-1" / "mnist.json"), "model_type": "onnx",
                                "keep": [1], "disk_size_bytes": 2414}


async def test_single_file_model_and_default_bucket(layout, puller, s3_server, seeded):
    layout.write_config("default", s3_config(s3_server, default_bucket=seeded))
    pulled = await puller.pull("single", "models/single.onnx", "")
    assert Path(pulled.local_path).read_bytes() == b"single-file-model"
    assert pulled.local_path == str(layout.root / "single" / "single.onnx")


async def test_empty_path_pulls_the_whole_bucket(layout, puller, s3_server, s3_seed):
    await s3_seed.put("whole-bkt", {"a.txt": b"a", "d/b.txt": b"bb"})
    layout.write_config("default", s3_config(s3_server, bucket="whole-bkt"))
    pulled = await puller.pull("whole", "", "")
    assert pulled.local_path == str(layout.root / "whole" / "_model")
    assert (Path(pulled.local_path) / "d" / "b.txt").read_bytes() == b"bb" and pulled.disk_size_bytes == 3


async def test_empty_prefix_and_missing_bucket_are_errors(layout, puller, s3_server, seeded):
    layout.write_config("default", s3_config(s3_server, bucket=seeded))
    with pytest.raises(PullError, match="no objects found under 'models/mnis' in s3 bucket 'models-bkt'"):
        await puller.pull("m", "models/mnis", "")  # a prefix of a real folder, not a folder
    with pytest.raises(PullError, match="no objects found"):
        await puller.pull("m", "models/mnist/empty", "")
    with pytest.raises(PullError, match="s3 bucket 'no-such-bkt': NoSuchBucket"):
        await puller.pull("m", "x", '{"bucket": "no-such-bkt"}')
    assert layout.leftovers() == []


async def test_hostile_key_is_refused_and_nothing_written(layout, puller, s3_server, s3_seed):
    await s3_seed.put("hostile-bkt", {"m/ok.bin": b"ok", "m/../../../../escaped.txt": b"pwned"})
    layout.write_config("default", s3_config(s3_server, bucket="hostile-bkt"))
    with pytest.raises(PullError, match="escapes the model directory"):
        await puller.pull("h", "m", "")
    assert layout.leftovers() == []
    assert not list(layout.root.parent.rglob("escaped.txt"))


async def test_huge_listing_3000_objects_three_pages(layout, s3_server, s3_seed):
    await s3_seed.put("huge-bkt", {})
    sem = asyncio.Semaphore(32)
    async with s3_seed.session.client("s3", endpoint_url=s3_seed.endpoint) as s3:
        async def put(i: int) -> None:
            async with sem:
                await s3.put_object(Bucket="huge-bkt", Key=f"big/f{i:05d}", Body=b"%d" % i)
        await asyncio.gather(*(put(i) for i in range(3000)))
    layout.write_config("default", s3_config(s3_server, bucket="huge-bkt"))
    puller = layout.puller(tuning=TransferTuning(concurrency=32))
    try:
        pulled = await puller.pull("huge", "big", "")
    finally:
        await puller.close()
    files = os.listdir(pulled.local_path)
    assert len(files) == 3000
    assert (Path(pulled.local_path) / "f02345").read_bytes() == b"2345"


async def test_large_object_ranged_download_is_exact(layout, s3_server, s3_seed):
    blob = os.urandom(5 * 1024 * 1024 + 123)
    await s3_seed.put("big-bkt", {"m/weights": blob})
    layout.write_config("default", s3_config(s3_server, bucket="big-bkt"))
    puller = layout.puller(tuning=TransferTuning(concurrency=4, part_size=1024 * 1024))
    try:
        pulled = await puller.pull("big", "m", "")
    finally:
        await puller.close()
    assert (Path(pulled.local_path) / "weights").read_bytes() == blob


async def test_cancelled_pull_leaves_nothing(layout, s3_server, s3_seed):
    await s3_seed.put("cancel-bkt", {"m/weights": os.urandom(48 * 1024 * 1024)})
    layout.write_config("default", s3_config(s3_server, bucket="cancel-bkt"))
    puller = layout.puller(tuning=TransferTuning(concurrency=1, part_size=256 * 1024))
    staging = layout.root / ".pulling"
    try:
        task = asyncio.create_task(puller.pull("c", "m", ""))
        deadline = asyncio.get_running_loop().time() + 30
        while not list(staging.rglob("weights")):  # the download has started writing
            assert asyncio.get_running_loop().time() < deadline and not task.done(), "download never started"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await puller.close()
    assert layout.leftovers() == []


async def test_clients_reused_per_connection_settings(layout, puller, s3_server, s3_seed, seeded):
    await s3_seed.put("second-bkt", {"m/x": b"x"})
    layout.write_config("a", s3_config(s3_server, bucket=seeded))
    layout.write_config("b", s3_config(s3_server, bucket="second-bkt"))
    layout.write_config("c", s3_config(s3_server, bucket="second-bkt", access_key_id="other"))
    await puller.pull("1", "models/single.onnx", '{"storage_key": "a"}')
    await puller.pull("2", "m", '{"storage_key": "b"}')
    provider = puller._providers["s3"]
    assert len(provider._clients) == 1  # same endpoint/region/credentials, another bucket
    await puller.pull("3", "m", '{"storage_key": "c"}')
    assert len(provider._clients) == 2


async def test_config_change_seen_without_restart(layout, puller, s3_server, s3_seed, seeded):
    await s3_seed.put("changed-bkt", {"models/single.onnx": b"new contents"})
    layout.write_config("k", s3_config(s3_server, bucket=seeded))
    first = await puller.pull("v1", "models/single.onnx", '{"storage_key": "k"}')
    layout.write_config("k", s3_config(s3_server, bucket="changed-bkt"))
    second = await puller.pull("v2", "models/single.onnx", '{"storage_key": "k"}')
    assert Path(first.local_path).read_bytes() == b"single-file-model"
    assert Path(second.local_path).read_bytes() == b"new contents"


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory):
    """A second moto server that enforces credentials (INITIAL_NO_AUTH_ACTION_COUNT=0)."""
    work = tmp_path_factory.mktemp("moto-auth")
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = ManagedProcess("moto-auth", [tools.moto_server_bin(), "-H", "127.0.0.1", "-p", str(port)],
                          work / "moto.log", env=env)
    proc.start(lambda: port_open(port), timeout=60)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


async def test_wrong_credentials_clear_error_no_retry(layout, puller, moto_with_auth):
    layout.write_config("default", {"type": "s3", "endpoint_url": moto_with_auth, "bucket": "any",
                                    "access_key_id": "AKIAWRONG", "secret_access_key": "nope"})
    with pytest.raises(PullError, match=r"InvalidAccessKeyId.*check the storage config's credentials"):
        await puller.pull("m", "x", "")
    assert layout.leftovers() == []


@pytest.fixture(scope="module")
def moto_tls(tmp_path_factory, certs):
    work = tmp_path_factory.mktemp("moto-tls")
    port = free_port()
    cmd = [tools.moto_server_bin(), "-H", "127.0.0.1", "-p", str(port), "-c", certs.server_cert, "-k", certs.server_key]
    proc = ManagedProcess("moto-tls", cmd, work / "moto.log")
    proc.start(lambda: port_open(port), timeout=60)
    yield f"https://127.0.0.1:{port}"
    proc.stop()


async def test_custom_ca_over_tls(layout, puller, moto_tls, certs):
    seeder = S3Seeder(type("S", (), {"ACCESS_KEY": "a", "SECRET_KEY": "b", "REGION": "us-east-1",
                                     "endpoint": moto_tls})())
    os.environ["AWS_CA_BUNDLE"] = str(certs.ca_path)  # only for the seeding client
    try:
        await seeder.put("tls-bkt", {"m/w": b"over tls"})
    finally:
        del os.environ["AWS_CA_BUNDLE"]
    layout.write_config("untrusted", {"type": "s3", "endpoint_url": moto_tls, "bucket": "tls-bkt",
                                      "access_key_id": "a", "secret_access_key": "b"})
    with pytest.raises(PullError, match="(?i)ssl|certificate"):
        await puller.pull("m", "m", '{"storage_key": "untrusted"}')
    layout.write_config("trusted", {"type": "s3", "endpoint_url": moto_tls, "bucket": "tls-bkt",
                                    "access_key_id": "a", "secret_access_key": "b", "certificate": certs.ca_pem})
    pulled = await puller.pull("m", "m", '{"storage_key": "trusted"}')
    assert (Path(pulled.local_path) / "w").read_bytes() == b"over tls"


async def test_outage_mid_download_is_retried(layout, s3_server, s3_seed):
    # Fault injection: a TCP proxy in front of moto drops the connections for a moment.
    from harness.tcp_proxy import TcpProxy
    from structlog.testing import capture_logs

    blob = os.urandom(24 * 1024 * 1024)
    await s3_seed.put("reset-bkt", {"m/weights": blob})
    proxy = await TcpProxy(s3_server.port).start()
    layout.write_config("default", s3_config(s3_server, bucket="reset-bkt", endpoint_url=proxy.endpoint))
    puller = layout.puller(tuning=TransferTuning(concurrency=1, part_size=256 * 1024),
                           retry=RetryPolicy(attempts=5, base_delay_s=0.05))
    staging = layout.root / ".pulling"
    try:
        with capture_logs() as logs:
            task = asyncio.create_task(puller.pull("r", "m", ""))
            deadline = asyncio.get_running_loop().time() + 30
            while not _starts_with(staging, blob[:4096]):  # the first part is on disk, more to come
                assert asyncio.get_running_loop().time() < deadline and not task.done(), "download never started"
                await asyncio.sleep(0.01)
            await proxy.cut()  # resets the open connection and refuses new ones until restored
            while not any(e["event"] == "transient storage error, retrying" for e in logs):
                assert asyncio.get_running_loop().time() < deadline and not task.done(), "no retry seen"
                await asyncio.sleep(0.01)
            await proxy.restore()
            pulled = await task
    finally:
        await puller.close()
        await proxy.stop()
    assert (Path(pulled.local_path) / "weights").read_bytes() == blob


def _starts_with(staging: Path, head: bytes) -> bool:
    for f in staging.rglob("weights"):
        with open(f, "rb") as fh:
            return fh.read(len(head)) == head
    return False
