"""The coordination store: etcd in production, an embedded store for `modelmesh local`.

    store = await open_store(settings.kv_store, state_dir)   # KVStore (api.py)
    view = await WatchedPrefix(store, prefix + "registry/", decode).start()
"""

from __future__ import annotations

from pathlib import Path

from modelmesh.kv.api import (
    EventType,
    KeyValue,
    KVStore,
    Lease,
    LeaseLost,
    StoreError,
    StoreUnavailable,
    WatchCompacted,
    WatchEvent,
)
from modelmesh.kv.config import KVConfigError, mesh_key_prefix, parse_kv_store
from modelmesh.kv.view import Change, Versioned, WatchedPrefix

__all__ = [
    "Change", "EventType", "KVConfigError", "KVStore", "KeyValue", "Lease", "LeaseLost",
    "StoreError", "StoreUnavailable", "Versioned", "WatchCompacted", "WatchEvent", "WatchedPrefix",
    "mesh_key_prefix", "open_store", "parse_kv_store",
]


async def open_store(kv_store_setting: str, state_dir: str | Path | None) -> KVStore:
    """The store KV_STORE names; empty = the embedded store, persisted under `state_dir`
    (in memory only when `state_dir` is None). Bad values raise KVConfigError (one line).
    etcd is connected lazily: the first call tells whether it is reachable
    (`await store.revision()` is a cheap check)."""
    spec = parse_kv_store(kv_store_setting)
    if spec.kind == "embedded":
        from modelmesh.kv.embedded import EmbeddedStore

        return EmbeddedStore(state_dir)
    from modelmesh.kv.etcd import EtcdStore

    assert spec.etcd is not None
    return EtcdStore(spec.etcd)
