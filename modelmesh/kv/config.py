"""The `KV_STORE` setting and the etcd_connection JSON (secret `model-serving-etcd`).

KV_STORE forms:
  ""                                   the embedded store (`modelmesh local`)
  etcd:/path/to/etcd_connection        a JSON file (the mounted secret)
  etcd:http://h:p[,http://h2:p2]       endpoints directly (https = TLS with system CAs)

etcd_connection fields: endpoints (comma separated; https = TLS), userid, password,
root_prefix, certificate | certificate_file (CA PEM), client_key | client_key_file,
client_certificate | client_certificate_file, override_authority. Relative *_file paths
are resolved against the JSON file's directory (the secret's keys are mounted side by side).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_ETCD_PORT = 2379

_KNOWN_FIELDS = {
    "endpoints", "userid", "password", "root_prefix",
    "certificate", "certificate_file", "client_key", "client_key_file",
    "client_certificate", "client_certificate_file", "override_authority",
}


class KVConfigError(ValueError):
    """An invalid KV_STORE value or etcd_connection file; the message is one line."""


@dataclass(frozen=True)
class EtcdEndpoint:
    host: str
    port: int
    tls: bool

    @property
    def target(self) -> str:
        """gRPC target ("host:port", IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.target}"


@dataclass(frozen=True)
class EtcdConnection:
    endpoints: tuple[EtcdEndpoint, ...]
    username: str = ""
    password: str = field(default="", repr=False)
    root_prefix: str = ""
    ca_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = field(default=None, repr=False)
    override_authority: str = ""

    @property
    def tls(self) -> bool:
        return self.endpoints[0].tls


@dataclass(frozen=True)
class KVStoreSpec:
    """What KV_STORE asks for: `kind` is "embedded" or "etcd" (then `etcd` is set)."""

    kind: str
    etcd: EtcdConnection | None = None


def parse_kv_store(value: str) -> KVStoreSpec:
    """Parse a KV_STORE value; raises KVConfigError with a one-line reason."""
    value = value.strip()
    if not value:
        return KVStoreSpec("embedded")
    scheme, sep, rest = value.partition(":")
    if not sep or scheme != "etcd" or not rest.strip():
        raise KVConfigError(
            f"KV_STORE={value!r}: expected 'etcd:<path to etcd_connection JSON>' or "
            "'etcd:http://host:port[,http://host2:port]' (or empty for the embedded store)"
        )
    rest = rest.strip()
    if rest.startswith("{"):  # inline JSON, handy in tests and for one-off runs
        return KVStoreSpec("etcd", parse_etcd_connection(rest, base_dir=Path.cwd(), source="KV_STORE"))
    if "://" in rest and not rest.startswith(("http://", "https://")):
        raise KVConfigError(f"KV_STORE={value!r}: etcd endpoints must be http:// or https:// URLs")
    if rest.startswith(("http://", "https://")):
        return KVStoreSpec("etcd", EtcdConnection(endpoints=parse_endpoints(rest, "KV_STORE")))
    return KVStoreSpec("etcd", load_etcd_connection(rest))


def load_etcd_connection(path: str | Path) -> EtcdConnection:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise KVConfigError(f"etcd connection file {str(path)!r}: cannot read: {e.strerror or e}") from None
    return parse_etcd_connection(text, base_dir=path.parent, source=f"etcd connection file {str(path)!r}")


def parse_etcd_connection(text: str, base_dir: Path, source: str = "etcd_connection") -> EtcdConnection:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise KVConfigError(f"{source}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(doc, dict):
        raise KVConfigError(f"{source}: expected a JSON object")
    unknown = sorted(set(doc) - _KNOWN_FIELDS)
    if unknown:
        raise KVConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_FIELDS))}")
    for name, v in doc.items():
        if not isinstance(v, str):
            raise KVConfigError(f"{source}: field {name!r} must be a string")

    endpoints_raw = doc.get("endpoints", "").strip()
    if not endpoints_raw:
        raise KVConfigError(f"{source}: field 'endpoints' is required (e.g. \"http://etcd:2379\")")
    endpoints = parse_endpoints(endpoints_raw, source)
    username, password = doc.get("userid", ""), doc.get("password", "")
    if password and not username:
        raise KVConfigError(f"{source}: 'password' is set but 'userid' is not")

    ca = _pem(doc, "certificate", base_dir, source)
    key = _pem(doc, "client_key", base_dir, source)
    cert = _pem(doc, "client_certificate", base_dir, source)
    if (key is None) != (cert is None):
        raise KVConfigError(f"{source}: client_key and client_certificate must be given together")
    if not endpoints[0].tls and (ca or key):
        raise KVConfigError(f"{source}: certificates are set but the endpoints are http://; use https:// for TLS")
    return EtcdConnection(
        endpoints=endpoints,
        username=username,
        password=password,
        root_prefix=doc.get("root_prefix", "").rstrip("/"),
        ca_pem=ca,
        client_key_pem=key,
        client_cert_pem=cert,
        override_authority=doc.get("override_authority", "").strip(),
    )


def parse_endpoints(raw: str, source: str) -> tuple[EtcdEndpoint, ...]:
    endpoints = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        url = urlsplit(item if "://" in item else f"http://{item}")
        if url.scheme not in ("http", "https"):
            raise KVConfigError(f"{source}: endpoint {item!r}: scheme must be http or https")
        try:
            port = url.port or DEFAULT_ETCD_PORT
        except ValueError:
            raise KVConfigError(f"{source}: endpoint {item!r}: invalid port") from None
        if not url.hostname or url.path not in ("", "/"):
            raise KVConfigError(f"{source}: endpoint {item!r}: expected scheme://host:port")
        endpoints.append(EtcdEndpoint(url.hostname, port, url.scheme == "https"))
    if not endpoints:
        raise KVConfigError(f"{source}: no endpoints given")
    if len({e.tls for e in endpoints}) > 1:
        raise KVConfigError(f"{source}: endpoints mix http:// and https://")
    return tuple(endpoints)


def _pem(doc: dict, name: str, base_dir: Path, source: str) -> bytes | None:
    inline, file_name = doc.get(name, ""), doc.get(f"{name}_file", "").strip()
    inline = inline if inline.strip() else ""
    if inline and file_name:
        raise KVConfigError(f"{source}: give either {name!r} or {name + '_file'!r}, not both")
    if inline:
        data = inline.encode()
    elif file_name:
        path = Path(file_name)
        if not path.is_absolute():
            path = base_dir / path
        try:
            data = path.read_bytes()
        except OSError as e:
            raise KVConfigError(f"{source}: {name}_file {str(path)!r}: cannot read: {e.strerror or e}") from None
    else:
        return None
    if b"-----BEGIN" not in data:
        raise KVConfigError(f"{source}: {name}: not a PEM block")
    return data


def mesh_key_prefix(root_prefix: str, kv_prefix: str, service_name: str) -> str:
    """`<root_prefix>/<MM_KVSTORE_PREFIX>/<MM_SERVICE_NAME>/`, with empty segments left out."""
    parts = [root_prefix.rstrip("/"), kv_prefix.strip("/"), service_name.strip("/")]
    return "/".join(p for p in parts if p) + "/"
