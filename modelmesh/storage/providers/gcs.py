"""gcs: Google Cloud Storage over its JSON API (aiohttp), service-account auth.

Config: bucket, private_key + client_email (+ token_uri, private_key_id): a service
account; without them requests are anonymous (public buckets). `endpoint_url` (ours, not
the reference's) points at a GCS-compatible server or emulator, `certificate` (CA PEM) at a
private one.
The JSON API is spoken directly rather than through a client library: two calls (list,
ranged GET) plus the service-account token exchange are all a puller needs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote


from modelmesh.storage.errors import PullInputError
from modelmesh.storage.paths import normalize_prefix
from modelmesh.storage.providers.base import (
    ObjectDownloader,
    RemoteObject,
    TransferTuning,
    plan_objects,
)
from modelmesh.storage.providers.rest import (
    CachedOAuthToken,
    TRANSPORT_ERRORS,
    Sessions,
    status_error,
    stream_object,
    transport_error,
)
from modelmesh.storage.retry import RetryPolicy, with_retries

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


class ServiceAccountToken(CachedOAuthToken):
    """OAuth2 access token for a service account (JWT bearer grant), refreshed before expiry."""

    def __init__(self, client_email: str, private_key: str, token_uri: str, key_id: str | None) -> None:
        super().__init__(token_uri)
        self.client_email = client_email
        self.token_uri = token_uri
        self.key_id = key_id
        self._key = _load_private_key(private_key)

    def grant_form(self) -> dict[str, str]:
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self._jwt()}

    def _jwt(self) -> str:
        from modelmesh.storage.providers.jwt import rs256_jwt

        now = int(time.time())
        claims = {"iss": self.client_email, "scope": READ_SCOPE, "aud": self.token_uri, "iat": now, "exp": now + 3600}
        return rs256_jwt(claims, self._key, self.key_id)


def _load_private_key(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise PullInputError(f"gcs storage config 'private_key' is not a usable PEM private key: {e}") from None


class GcsProvider:
    def __init__(self, retry: RetryPolicy, tuning: TransferTuning) -> None:
        self.retry = retry
        self.downloader = ObjectDownloader(tuning, retry)
        self.sessions = Sessions(tuning.concurrency)
        self._tokens: dict[tuple[str, str, str], ServiceAccountToken] = {}

    def _credentials(self, config: dict[str, Any]) -> ServiceAccountToken | None:
        email, key = config.get("client_email"), config.get("private_key")
        if not email and not key:
            return None
        if not (isinstance(email, str) and email and isinstance(key, str) and key):
            raise PullInputError("gcs storage config needs both 'client_email' and 'private_key'")
        token_uri = config.get("token_uri") or DEFAULT_TOKEN_URI
        ident = (email, key, token_uri)
        creds = self._tokens.get(ident)
        if creds is None:
            creds = ServiceAccountToken(email, key, token_uri, config.get("private_key_id") or None)
            self._tokens[ident] = creds
        return creds

    async def fetch(self, config: dict[str, Any], remote_path: str, dest: str) -> None:
        bucket = config.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise PullInputError("gcs storage config has no 'bucket'")
        endpoint = str(config.get("endpoint_url") or DEFAULT_ENDPOINT).rstrip("/")
        creds = self._credentials(config)
        session = self.sessions.get(config.get("certificate") or None)
        where = f"gcs bucket {bucket!r}"
        base = f"{endpoint}/storage/v1/b/{quote(bucket, safe='')}/o"

        async def headers() -> dict[str, str]:
            return {"Authorization": f"Bearer {await creds.token(session, self.retry)}"} if creds else {}

        async def list_page(prefix: str, page_token: str | None) -> dict[str, Any]:
            params = {"prefix": prefix, "maxResults": "1000"}
            if page_token:
                params["pageToken"] = page_token
            try:
                async with session.get(base, params=params, headers=await headers()) as resp:
                    if resp.status != 200:
                        raise status_error(resp.status, resp.reason or "", where, (await resp.text())[:200])
                    return await resp.json(content_type=None)
            except TRANSPORT_ERRORS as e:
                raise transport_error(e, where) from None

        async def list_all() -> list[RemoteObject]:
            prefix, out, page_token = normalize_prefix(remote_path), [], None
            while True:
                page = await with_retries(self.retry, f"list {where}", lambda t=page_token: list_page(prefix, t))
                out.extend(RemoteObject(i["name"], int(i.get("size", 0))) for i in page.get("items") or ())
                page_token = page.get("nextPageToken")
                if not page_token:
                    return out

        plan = plan_objects(remote_path, await list_all(), dest, where)

        def media_url(key: str) -> str:
            return f"{base}/{quote(key, safe='')}?alt=media"

        def read(key: str, start: int | None, end: int | None) -> AsyncIterator[bytes]:
            async def open_response():
                h = await headers()
                if start is not None:
                    h["Range"] = f"bytes={start}-{end}"
                return session.get(media_url(key), headers=h)

            return stream_object(open_response, f"{where} object {key!r}", start is not None)

        await self.downloader.download(plan, read)

    async def close(self) -> None:
        await self.sessions.close()
