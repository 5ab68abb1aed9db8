"""Azure Blob credentials: connection strings, Shared Key signing, SAS and Entra ID
(client id/secret/tenant) tokens. Pure functions plus one token cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlsplit


from modelmesh.storage.errors import PullInputError
from modelmesh.storage.providers.rest import (
    CachedOAuthToken,
)

API_VERSION = "2021-08-06"
# Azurite's well-known development account (documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STORAGE_SCOPE = "https://storage.azure.com/.default"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class AzureAccount:
    name: str
    endpoint: str  # blob service URL, no trailing slash
    key: str | None = None  # Shared Key (base64)
    sas: str | None = None  # SAS query string without '?'
    client_id: str | None = None
    client_secret: str | None = None
    tenant_id: str | None = None
    authority: str = DEFAULT_AUTHORITY


def parse_connection_string(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise PullInputError("azure connection_string is malformed (expected Name=value;...)")
        out[name.strip()] = value.strip()
    return out


def account_from_config(config: dict[str, Any]) -> AzureAccount:
    def text(name: str) -> str | None:
        v = config.get(name)
        if v is not None and not isinstance(v, str):
            raise PullInputError(f"azure storage config field {name!r} must be a string")
        return v or None

    conn = text("connection_string")
    if conn:
        cs = parse_connection_string(conn)
        if cs.get("UseDevelopmentStorage", "").lower() == "true":
            return AzureAccount(DEV_ACCOUNT, f"http://127.0.0.1:10000/{DEV_ACCOUNT}", key=DEV_KEY)
        name = cs.get("AccountName") or text("account_name")
        endpoint = cs.get("BlobEndpoint")
        if not endpoint:
            if not name:
                raise PullInputError("azure connection_string has neither AccountName nor BlobEndpoint")
            scheme = cs.get("DefaultEndpointsProtocol", "https")
            endpoint = f"{scheme}://{name}.blob.{cs.get('EndpointSuffix', 'core.windows.net')}"
        if not name:
            name = urlsplit(endpoint).hostname.split(".")[0]
        sas = cs.get("SharedAccessSignature")
        return AzureAccount(name, endpoint.rstrip("/"), key=cs.get("AccountKey"), sas=sas.lstrip("?") if sas else None)
    name = text("account_name")
    if not name:
        raise PullInputError("azure storage config needs 'account_name' or 'connection_string'")
    endpoint = (text("endpoint_url") or f"https://{name}.blob.core.windows.net").rstrip("/")
    client_id, secret, tenant = text("client_id"), text("client_secret"), text("tenant_id")
    if any((client_id, secret, tenant)) and not all((client_id, secret, tenant)):
        raise PullInputError("azure storage config needs all of client_id, client_secret and tenant_id")
    sas = text("sas_token")
    return AzureAccount(name, endpoint, key=text("account_key"), sas=sas.lstrip("?") if sas else None,
                        client_id=client_id, client_secret=secret, tenant_id=tenant,
                        authority=(text("authority_host") or DEFAULT_AUTHORITY).rstrip("/"))


def shared_key_headers(account: AzureAccount, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus x-ms-date, x-ms-version and the Shared Key Authorization for `method url`."""
    assert account.key is not None
    out = {**headers, "x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
    parts = urlsplit(url)
    ms = sorted((k.lower(), v.strip()) for k, v in out.items() if k.lower().startswith("x-ms-"))
    canon_headers = "".join(f"{k}:{v}\n" for k, v in ms)
    resource = f"/{account.name}{parts.path or '/'}"
    query: dict[str, list[str]] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(k.lower(), []).append(v)
    for k in sorted(query):
        resource += f"\n{k}:{','.join(sorted(query[k]))}"
    std = {k.lower(): v for k, v in out.items()}
    fields = ["content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
              "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"]
    values = [std.get(f, "") for f in fields]
    if values[2] == "0":
        values[2] = ""
    to_sign = "\n".join([method, *values]) + "\n" + canon_headers + resource
    digest = hmac.new(base64.b64decode(account.key), to_sign.encode(), hashlib.sha256).digest()
    out["Authorization"] = f"SharedKey {account.name}:{base64.b64encode(digest).decode()}"
    return out


class EntraToken(CachedOAuthToken):
    """Client-credentials token for Azure Storage, refreshed 5 minutes before expiry."""

    def __init__(self, account: AzureAccount) -> None:
        super().__init__(f"{account.authority}/{account.tenant_id}/oauth2/v2.0/token")
        self.account = account

    def grant_form(self) -> dict[str, str]:
        a = self.account
        return {"grant_type": "client_credentials", "client_id": a.client_id, "client_secret": a.client_secret,
                "scope": STORAGE_SCOPE}

