"""azure: Azure Blob Storage over its REST API (aiohttp).

Config: account_name, container, and one of connection_string, client_id + client_secret +
tenant_id (Entra ID), account_key or sas_token (ours), or nothing (public container);
certificate (CA PEM), endpoint_url and authority_host (ours) for private endpoints.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.paths import normalize_prefix
from modelmesh.storage.providers.azure_auth import (
    API_VERSION,
    AzureAccount,
    EntraToken,
    account_from_config,
    shared_key_headers,
)
from modelmesh.storage.providers.base import (
    ObjectDownloader,
    RemoteObject,
    TransferTuning,
    plan_objects,
)
from modelmesh.storage.providers.rest import (
    TRANSPORT_ERRORS,
    Sessions,
    status_error,
    stream_object,
    transport_error,
)
from modelmesh.storage.retry import RetryPolicy, with_retries


class AzureProvider:
    def __init__(self, retry: RetryPolicy, tuning: TransferTuning) -> None:
        self.retry = retry
        self.downloader = ObjectDownloader(tuning, retry)
        self.sessions = Sessions(tuning.concurrency)
        self._tokens: dict[AzureAccount, EntraToken] = {}

    async def _headers(self, account: AzureAccount, session: aiohttp.ClientSession, url: str,
                       extra: dict[str, str]) -> dict[str, str]:
        if account.key and not account.sas:
            return shared_key_headers(account, "GET", url, extra)
        headers = {**extra, "x-ms-version": API_VERSION}
        if account.client_id:
            entra = self._tokens.setdefault(account, EntraToken(account))
            headers["Authorization"] = f"Bearer {await entra.token(session, self.retry)}"
        return headers

    def _url(self, account: AzureAccount, path: str, query: dict[str, str]) -> str:
        q = urlencode(query, quote_via=quote)
        if account.sas:
            q = f"{q}&{account.sas}" if q else account.sas
        return f"{account.endpoint}{path}" + (f"?{q}" if q else "")

    async def _get(self, account: AzureAccount, session: aiohttp.ClientSession, url: str,
                   extra: dict[str, str] | None = None):
        headers = await self._headers(account, session, url, extra or {})
        # encoded=True: send the URL exactly as signed.
        return session.get(URL(url, encoded=True), headers=headers)

    async def fetch(self, config: dict[str, Any], remote_path: str, dest: str) -> None:
        account = account_from_config(config)
        container = config.get("container")
        if not isinstance(container, str) or not container:
            raise PullInputError("azure storage config has no 'container'")
        where = f"azure container {container!r}"
        session = self.sessions.get(config.get("certificate") or None)
        container_path = "/" + quote(container, safe="")

        async def list_page(prefix: str, marker: str | None) -> tuple[list[RemoteObject], str | None]:
            query = {"restype": "container", "comp": "list", "prefix": prefix, "maxresults": "5000"}
            if marker:
                query["marker"] = marker
            url = self._url(account, container_path, query)
            try:
                async with await self._get(account, session, url) as resp:
                    body = await resp.text()
                    if resp.status != 200:
                        raise status_error(resp.status, resp.reason or "", where, _error_code(body))
            except TRANSPORT_ERRORS as e:
                raise transport_error(e, where) from None
            return _parse_listing(body, where)

        async def list_all() -> list[RemoteObject]:
            prefix, out, marker = normalize_prefix(remote_path), [], None
            while True:
                page, marker = await with_retries(self.retry, f"list {where}", lambda m=marker: list_page(prefix, m))
                out.extend(page)
                if not marker:
                    return out

        plan = plan_objects(remote_path, await list_all(), dest, where)

        def blob_url(key: str) -> str:
            return self._url(account, f"{container_path}/{quote(key, safe='/~')}", {})

        def read(key: str, start: int | None, end: int | None) -> AsyncIterator[bytes]:
            extra = {} if start is None else {"x-ms-range": f"bytes={start}-{end}"}
            return stream_object(lambda: self._get(account, session, blob_url(key), extra),
                                 f"{where} blob {key!r}", start is not None, _error_code)

        await self.downloader.download(plan, read)

    async def close(self) -> None:
        await self.sessions.close()


def _error_code(body: str) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body[:200]
    code, msg = root.findtext("Code") or "", (root.findtext("Message") or "").split("\n")[0]
    return f"{code} {msg}".strip()


def _parse_listing(body: str, where: str) -> tuple[list[RemoteObject], str | None]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise PullError(f"{where}: unreadable blob listing: {e}") from None
    out = []
    for blob in root.iterfind("./Blobs/Blob"):
        name = blob.findtext("Name")
        size = blob.findtext("./Properties/Content-Length")
        if name is not None:
            out.append(RemoteObject(name, int(size or 0)))
    return out, (root.findtext("NextMarker") or None)
