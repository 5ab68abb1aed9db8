"""aiohttp plumbing shared by the REST-speaking providers (http, gcs, azure): one session
per TLS settings, status -> error mapping, and streaming a response into a file."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from modelmesh.storage.errors import PullError, TransientError
from modelmesh.storage.pem_files import PemFiles
from modelmesh.storage.retry import with_retries

TlsKey = tuple[str | None, str | None, str | None]  # (CA PEM, client cert PEM, client key PEM)

CHUNK = 1 << 20


class Sessions:
    """aiohttp sessions cached per TLS material; each keeps its own connection pool."""

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self._sessions: dict[TlsKey, aiohttp.ClientSession] = {}
        self._pem = PemFiles()

    def get(self, ca: str | None = None, cert: str | None = None, key: str | None = None) -> aiohttp.ClientSession:
        tls: TlsKey = (ca, cert, key)
        session = self._sessions.get(tls)
        if session is None:
            ssl_ctx: ssl.SSLContext | bool = True
            if ca or cert:
                ctx = ssl.create_default_context()
                if ca:
                    try:
                        ctx.load_verify_locations(cadata=ca)
                    except ssl.SSLError as e:
                        raise PullError(f"storage config 'certificate' is not a valid PEM certificate: {e}") from None
                if cert:
                    try:
                        ctx.load_cert_chain(self._pem.path_for(cert, "client_certificate"),
                                            self._pem.path_for(key, "client_key") if key else None)
                    except ssl.SSLError as e:
                        raise PullError(f"storage config client certificate/key unusable: {e}") from None
                ssl_ctx = ctx
            connector = aiohttp.TCPConnector(limit=self.pool_size, ssl=ssl_ctx)
            timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
            session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
            self._sessions[tls] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()
        self._pem.close()


def status_error(status: int, reason: str, where: str, body: str = "") -> PullError:
    detail = f"{where}: HTTP {status} {reason}".rstrip()
    if body:
        detail += f": {body[:200]}"
    if status >= 500 or status in (408, 429):
        return TransientError(detail)
    if status in (401, 403):
        return PullError(f"{detail} (check the storage config's credentials)")
    return PullError(detail)


def transport_error(e: BaseException, where: str) -> PullError:
    if isinstance(e, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return PullError(f"{where}: TLS error: {e}")
    return TransientError(f"{where}: {type(e).__name__}: {e}".rstrip(": "))


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


async def stream_body(resp: aiohttp.ClientResponse, where: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            yield chunk
    except TRANSPORT_ERRORS as e:
        raise transport_error(e, where) from None


async def stream_object(open_response: Callable[[], Awaitable[Any]], what: str, ranged: bool,
                        error_detail: Callable[[str], str] = lambda body: body[:200]) -> AsyncIterator[bytes]:
    """Stream one object, or one byte range of it, from the response `open_response()` gives
    (an aiohttp request context). Anything but 200 (206 for a range) is a PullError naming
    `what` with `error_detail(body)`; transport failures are mapped as well."""
    try:
        async with await open_response() as resp:
            if resp.status != (206 if ranged else 200):
                raise status_error(resp.status, resp.reason or "", what, error_detail(await resp.text()))
            async for chunk in stream_body(resp, what):
                yield chunk
    except TRANSPORT_ERRORS as e:
        raise transport_error(e, what) from None


async def write_stream(fd: int, chunks: AsyncIterator[bytes]) -> int:
    offset = 0
    async for chunk in chunks:
        os.pwrite(fd, chunk, offset)
        offset += len(chunk)
    return offset


class CachedOAuthToken:
    """An OAuth2 access token from a token endpoint, cached until 5 minutes before it
    expires. Subclasses say what to post (`grant_form`): a JWT bearer grant (GCS service
    accounts) or client credentials (Azure Entra ID)."""

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def grant_form(self) -> dict[str, str]:
        raise NotImplementedError

    async def token(self, session: aiohttp.ClientSession, retry) -> str:
        async with self._lock:
            if self._token and time.time() < self._expires_at - 300:
                return self._token
            where = f"token request to {self.token_url}"

            async def exchange() -> dict:
                try:
                    async with session.post(self.token_url, data=self.grant_form()) as resp:
                        if resp.status != 200:
                            raise status_error(resp.status, resp.reason or "", where, (await resp.text())[:200])
                        return await resp.json(content_type=None)
                except TRANSPORT_ERRORS as e:
                    raise transport_error(e, where) from None

            reply = await with_retries(retry, where, exchange)
            token = reply.get("access_token")
            if not isinstance(token, str):
                raise PullError(f"{where}: no access_token in the reply")
            self._token = token
            self._expires_at = time.time() + float(reply.get("expires_in", 3600))
            return token
