"""s3 (and S3-compatible: MinIO, Ceph, COS) through aioboto3.

Config: bucket, access_key_id, secret_access_key, endpoint_url, region, certificate (PEM).
One client per connection settings (endpoint, region, credentials, CA), shared by every
bucket; botocore's own retries are off so RetryPolicy is the only retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
import botocore.exceptions
from botocore.config import Config

from modelmesh.storage.errors import PullError, PullInputError, TransientError
from modelmesh.storage.paths import normalize_prefix
from modelmesh.storage.pem_files import PemFiles
from modelmesh.storage.providers.base import (
    ObjectDownloader,
    RemoteObject,
    TransferTuning,
    plan_objects,
)
from modelmesh.storage.retry import RetryPolicy, with_retries

ConnKey = tuple[str | None, str | None, str | None, str | None, str | None]


def _text(config: dict[str, Any], name: str) -> str | None:
    value = config.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PullInputError(f"s3 storage config field {name!r} must be a string")
    return value


class S3Provider:
    def __init__(self, retry: RetryPolicy, tuning: TransferTuning) -> None:
        self.retry = retry
        self.tuning = tuning
        self.downloader = ObjectDownloader(tuning, retry)
        self._session = aioboto3.Session()
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[ConnKey, Any] = {}
        self._creating: dict[ConnKey, asyncio.Lock] = {}
        self._pem = PemFiles()

    async def _client(self, config: dict[str, Any]) -> Any:
        endpoint = _text(config, "endpoint_url")
        if endpoint and "://" not in endpoint:
            endpoint = "https://" + endpoint  # the reference accepts a bare host:port
        key: ConnKey = (endpoint, _text(config, "region"), _text(config, "access_key_id"),
                        _text(config, "secret_access_key"), _text(config, "certificate"))
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._creating.setdefault(key, asyncio.Lock()):
            client = self._clients.get(key)
            if client is None:
                endpoint, region, access_key, secret_key, certificate = key
                verify: Any = self._pem.path_for(certificate, "certificate") if certificate else None
                anonymous = access_key is None and secret_key is None
                cfg = Config(
                    max_pool_connections=self.tuning.concurrency,
                    retries={"total_max_attempts": 1},
                    connect_timeout=10, read_timeout=60,
                    signature_version=botocore.UNSIGNED if anonymous else None,
                    s3={"addressing_style": "path"} if endpoint else None,
                )
                client = await self._stack.enter_async_context(self._session.client(
                    "s3", endpoint_url=endpoint, region_name=region or "us-east-1",
                    aws_access_key_id=access_key, aws_secret_access_key=secret_key, verify=verify, config=cfg,
                ))
                self._clients[key] = client
        return client

    async def fetch(self, config: dict[str, Any], remote_path: str, dest: str) -> None:
        bucket = _text(config, "bucket")
        if not bucket:
            raise PullInputError("s3 storage config has no 'bucket' (nor 'default_bucket')")
        client = await self._client(config)
        where = f"s3 bucket {bucket!r}"
        prefix = normalize_prefix(remote_path)
        objects = await with_retries(self.retry, f"list {where}", lambda: self._list(client, bucket, prefix))
        plan = plan_objects(remote_path, objects, dest, where)

        async def read(key: str, start: int | None, end: int | None) -> AsyncIterator[bytes]:
            async with _errors(f"{where} object {key!r}"):
                extra = {} if start is None else {"Range": f"bytes={start}-{end}"}
                resp = await client.get_object(Bucket=bucket, Key=key, **extra)
                body = resp["Body"]
                try:
                    async for chunk in body.iter_chunks(1 << 20):
                        yield chunk
                finally:
                    body.close()

        await self.downloader.download(plan, read)

    async def _list(self, client: Any, bucket: str, prefix: str) -> list[RemoteObject]:
        out: list[RemoteObject] = []
        async with _errors(f"s3 bucket {bucket!r}"):
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                out.extend(RemoteObject(o["Key"], int(o["Size"])) for o in page.get("Contents", ()))
        return out

    async def close(self) -> None:
        self._clients.clear()
        await self._stack.aclose()
        self._pem.close()


@contextlib.asynccontextmanager
async def _errors(where: str) -> AsyncIterator[None]:
    """Map botocore/aiohttp failures to PullError (permanent) or TransientError (retry)."""
    try:
        yield
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code, msg = err.get("Code", ""), err.get("Message", "")
        text = f"{where}: {code or status} {msg}".rstrip()
        if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError"):
            raise TransientError(text) from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or status == 403:
            raise PullError(f"{text} (check the storage config's credentials)") from None
        raise PullError(text) from None
    except botocore.exceptions.NoCredentialsError:
        raise PullInputError(f"{where}: no credentials in the storage config") from None
    except botocore.exceptions.SSLError as e:
        raise PullError(f"{where}: TLS error: {e}") from None
    except (TimeoutError, botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError,
            aiohttp.ClientError, ConnectionError) as e:
        raise TransientError(f"{where}: {type(e).__name__}: {e}") from None
