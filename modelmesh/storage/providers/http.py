"""http(s): GET `url` + path into one file.

Config: url, headers (map), certificate (CA PEM), client_certificate, client_key.
A non-2xx status is an error (the reference saved error pages as the model).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import urlsplit

from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.providers.base import create_file
from modelmesh.storage.providers.rest import (
    TRANSPORT_ERRORS,
    Sessions,
    status_error,
    stream_body,
    transport_error,
)
from modelmesh.storage.retry import RetryPolicy, with_retries


def model_url(base: str, path: str) -> str:
    if not path.strip("/") or path.strip() == ".":
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


class HttpProvider:
    def __init__(self, retry: RetryPolicy, pool_size: int = 16) -> None:
        self.retry = retry
        self.sessions = Sessions(pool_size)

    async def fetch(self, config: dict[str, Any], remote_path: str, dest: str) -> None:
        base = config.get("url")
        if not isinstance(base, str) or not base:
            raise PullInputError("http storage config needs 'url'")
        if urlsplit(base).scheme not in ("http", "https"):
            raise PullInputError(f"http storage config 'url' must be http(s)://..., got {base!r}")
        headers = config.get("headers") or {}
        if not isinstance(headers, dict):
            raise PullInputError("http storage config 'headers' must be an object")
        headers = {str(k): str(v) for k, v in headers.items()}
        session = self.sessions.get(config.get("certificate") or None, config.get("client_certificate") or None,
                                    config.get("client_key") or None)
        url = model_url(base, remote_path)
        where = f"GET {_redacted(url)}"
        fd = await asyncio.to_thread(create_file, dest)

        async def attempt() -> None:
            os.ftruncate(fd, 0)
            try:
                async with session.get(url, headers=headers, allow_redirects=True) as resp:
                    if not 200 <= resp.status < 300:
                        body = (await resp.content.read(512)).decode("utf-8", "replace").strip()
                        raise status_error(resp.status, resp.reason or "", where, body)
                    offset = 0
                    async for chunk in stream_body(resp, where):
                        os.pwrite(fd, chunk, offset)
                        offset += len(chunk)
                    if resp.content_length is not None and offset != resp.content_length:
                        raise PullError(f"{where}: got {offset} of {resp.content_length} bytes")
            except TRANSPORT_ERRORS as e:
                raise transport_error(e, where) from None

        try:
            await with_retries(self.retry, where, attempt)
        finally:
            os.close(fd)

    async def close(self) -> None:
        await self.sessions.close()


def _redacted(url: str) -> str:
    # Query strings often carry tokens (pre-signed URLs): keep them out of errors and logs.
    parts = urlsplit(url)
    return parts._replace(query="…" if parts.query else "", netloc=parts.netloc.rpartition("@")[2]).geturl()
