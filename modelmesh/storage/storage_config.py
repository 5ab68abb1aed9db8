"""The storage-config secret, mounted as a directory: one file per key, each a JSON object.

Files are parsed once and re-parsed only when the directory's listing or a file's
(mtime, size, inode) changes, so a rotated secret is seen on the next pull without a
restart and without re-reading every file for every load. Kubernetes updates a mounted
secret by swapping the `..data` symlink, which changes every entry's stat.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from modelmesh.observability.logging import get_logger
from modelmesh.storage.errors import PullInputError
from modelmesh.storage.model_key import ModelKey

log = get_logger("modelmesh.storage.config")

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class _Entry:
    config: dict[str, Any] | None
    error: str | None  # why the file could not be used (reported only when it is asked for)


class StorageConfigDir:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fingerprint: Fingerprint | None = None
        self._entries: dict[str, _Entry] = {}

    def _scan(self) -> Fingerprint:
        rows = []
        try:
            with os.scandir(self.path) as it:
                for e in it:
                    # `..data` and the timestamped dirs of a secret mount are not keys.
                    if e.name.startswith("."):
                        continue
                    try:
                        st = os.stat(e.path)  # follows the secret's symlinks
                    except OSError:
                        continue
                    if not os.path.isfile(e.path):
                        continue
                    rows.append((e.name, st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            return ()
        return tuple(sorted(rows))

    def _load(self, fingerprint: Fingerprint) -> None:
        entries: dict[str, _Entry] = {}
        for name, *_ in fingerprint:
            try:
                with open(os.path.join(self.path, name), "rb") as f:
                    data = orjson.loads(f.read())
                if not isinstance(data, dict):
                    entries[name] = _Entry(None, f"storage config {name!r} is not a JSON object")
                else:
                    entries[name] = _Entry(data, None)
            except (OSError, orjson.JSONDecodeError) as e:
                entries[name] = _Entry(None, f"storage config {name!r} is not valid JSON: {e}")
        self._entries = entries
        self._fingerprint = fingerprint
        log.info("storage config loaded", dir=self.path, keys=sorted(entries))

    def entries(self) -> dict[str, _Entry]:
        fingerprint = self._scan()
        if fingerprint != self._fingerprint:
            self._load(fingerprint)
        return self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        """The parsed config for `key`, None if there is no such file; bad JSON raises."""
        entry = self.entries().get(key)
        if entry is None:
            return None
        if entry.error:
            raise PullInputError(entry.error)
        return dict(entry.config)


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """`headers.Authorization` = v sets config["headers"]["Authorization"] (creating dicts)."""
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def resolve_storage_config(key: ModelKey, configs: StorageConfigDir) -> dict[str, Any]:
    """The effective storage config for a model, as the reference resolves it."""
    if key.storage_key is not None:
        config = configs.get(key.storage_key)
        if config is None:
            raise PullInputError(f"did not find storage config for key {key.storage_key!r}")
    else:
        config = None
        param_type = key.storage_params.get("type")
        if isinstance(param_type, str) and param_type:
            config = configs.get(f"default_{param_type}")
        if config is None:
            config = configs.get("default")
        config = config or {}
    entry = config
    config = _deep_copy(config)
    if key.bucket is not None:
        config["bucket"] = key.bucket
    for name, value in key.storage_params.items():
        set_dotted(config, str(name), value)
    _check_credentials_stay_home(entry, config, {str(n) for n in key.storage_params}, key.storage_key)
    if config.get("type") == "s3" and not config.get("bucket") and config.get("default_bucket"):
        config["bucket"] = config["default_bucket"]
    if not config.get("type"):
        raise PullInputError("Predictor Storage field missing")
    if not isinstance(config["type"], str):
        raise PullInputError("storage config field 'type' must be a string")
    return config


# Per storage type: the fields that say where requests (and token requests) go, and the
# fields that authenticate them. A model's parameters may override any field, but an entry's
# credentials are only ever sent to the entry's own endpoint.
ENDPOINT_FIELDS: dict[str, tuple[str, ...]] = {
    "s3": ("endpoint_url",),
    "http": ("url",),
    "gcs": ("endpoint_url", "token_uri"),
    "azure": ("endpoint_url", "account_name", "authority_host", "connection_string"),
}
CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "s3": ("access_key_id", "secret_access_key"),
    "http": ("headers", "client_certificate", "client_key"),
    "gcs": ("private_key", "client_email", "private_key_id"),
    "azure": ("connection_string", "account_key", "sas_token", "client_id", "client_secret"),
}


def _where(value: Any) -> Any:
    """What decides where a request goes: a URL's scheme, host and port (a path may change)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if "://" not in text:
        return text.lower()
    try:
        parts = urlsplit(text)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return text


def _check_credentials_stay_home(entry: dict[str, Any], config: dict[str, Any], overridden: set[str],
                                 entry_name: str | None) -> None:
    """Refuse a model whose parameters move an entry's endpoint while its credentials would
    go along (the parameters' own credentials may go anywhere)."""
    kind = config.get("type")
    moved = [f for f in ENDPOINT_FIELDS.get(kind, ()) if _where(config.get(f)) != _where(entry.get(f))]
    if not moved:
        return
    carried = [f for f in CREDENTIAL_FIELDS.get(kind, ()) if entry.get(f) and f not in overridden]
    if carried:
        name = f"storage config {entry_name!r}" if entry_name else "the default storage config"
        raise PullInputError(
            f"storage parameter(s) {', '.join(moved)} point {name} at another endpoint; its credentials "
            f"({', '.join(carried)}) are only sent to its own endpoint: add a storage config entry for that "
            "endpoint instead")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
