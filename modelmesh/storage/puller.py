"""The puller: model key + path -> files under `<root>/<modelId>/`, ready for a model server.

A pull is staged in `<root>/.pulling/` and renamed into place only when complete, so a
failed or cancelled pull leaves nothing behind and a half-written model is never visible.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

from modelmesh.observability.logging import get_logger
from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.model_key import parse_model_key
from modelmesh.storage.paths import (
    check_model_id,
    disk_size,
    remote_basename,
    schema_basename,
)
from modelmesh.storage.providers.base import Provider, TransferTuning
from modelmesh.storage.retry import RetryPolicy
from modelmesh.storage.storage_config import StorageConfigDir, resolve_storage_config

log = get_logger("modelmesh.storage.puller")

STAGING_DIR = ".pulling"


@dataclass(frozen=True)
class PulledModel:
    model_id: str
    local_path: str  # absolute path of the pulled model file or dir: <root>/<modelId>/<basename>
    schema_path: str | None  # local absolute path of the schema file, if any
    disk_size_bytes: int  # total size, following symlinks
    model_key: dict[str, Any]  # modelKey after the pull: storage fields removed, local schema_path, size


class Puller:
    def __init__(self, root_model_dir: str, storage_config_dir: str, *, pvc_mounts_root: str = "/pvc_mounts",
                 retry: RetryPolicy | None = None, tuning: TransferTuning | None = None) -> None:
        self.root = os.path.abspath(root_model_dir)
        self.configs = StorageConfigDir(storage_config_dir)
        self.pvc_mounts_root = pvc_mounts_root
        self.retry = retry or RetryPolicy()
        self.tuning = tuning or TransferTuning()
        self._providers: dict[str, Provider] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> Puller:
        """A puller configured from AdapterSettings (ROOT_MODEL_DIR, STORAGE_CONFIG_DIR, PULL_*)."""
        return cls(settings.root_model_dir, settings.storage_config_dir, pvc_mounts_root=settings.pvc_mounts_root,
                   retry=RetryPolicy(attempts=settings.pull_retry_attempts),
                   tuning=TransferTuning(concurrency=settings.pull_concurrency,
                                         part_size=settings.pull_part_size_bytes))

    # --- providers -------------------------------------------------------------------------

    def _provider(self, storage_type: str) -> Provider:
        kind = "http" if storage_type == "https" else storage_type
        provider = self._providers.get(kind)
        if provider is None:
            provider = self._make_provider(kind)
            self._providers[kind] = provider
        return provider

    def _make_provider(self, kind: str) -> Provider:
        # Imported on first use: a pod that only pulls from S3 never loads the other clients.
        if kind == "pvc":
            from modelmesh.storage.providers.pvc import PvcProvider

            return PvcProvider(self.pvc_mounts_root)
        if kind == "s3":
            from modelmesh.storage.providers.s3 import S3Provider

            return S3Provider(self.retry, self.tuning)
        if kind == "gcs":
            from modelmesh.storage.providers.gcs import GcsProvider

            return GcsProvider(self.retry, self.tuning)
        if kind == "azure":
            from modelmesh.storage.providers.azure import AzureProvider

            return AzureProvider(self.retry, self.tuning)
        if kind == "http":
            from modelmesh.storage.providers.http import HttpProvider

            return HttpProvider(self.retry)
        raise PullInputError(f"unsupported storage type {kind!r} (expected s3, gcs, azure, http, https or pvc)")

    # --- operations ------------------------------------------------------------------------

    def model_dir(self, model_id: str) -> str:
        check_model_id(model_id)
        return os.path.join(self.root, model_id)

    def _lock(self, model_id: str) -> asyncio.Lock:
        return self._locks.setdefault(model_id, asyncio.Lock())

    async def pull(self, model_id: str, model_path: str, model_key: str) -> PulledModel:
        final_dir = self.model_dir(model_id)
        key = parse_model_key(model_key)
        config = resolve_storage_config(key, self.configs)
        provider = self._provider(config["type"])
        model_name = remote_basename(model_path)
        schema_name = schema_basename(key.schema_path, model_name) if key.schema_path else None

        async with self._lock(model_id):
            staging = os.path.join(self.root, STAGING_DIR, f"{model_id}.{uuid.uuid4().hex[:12]}")
            await asyncio.to_thread(os.makedirs, staging)
            log.info("pulling model", model_id=model_id, storage_type=config["type"], path=model_path)
            try:
                await _unwrap(provider.fetch(config, model_path, os.path.join(staging, model_name)))
                if key.schema_path and schema_name:
                    await _unwrap(provider.fetch(config, key.schema_path, os.path.join(staging, schema_name)))
                size = await asyncio.to_thread(disk_size, staging)
                await asyncio.to_thread(_replace_dir, staging, final_dir)
            except BaseException as e:
                # Also on cancellation: shielded so a second cancel cannot leave files behind.
                await asyncio.shield(asyncio.to_thread(shutil.rmtree, staging, True))
                if isinstance(e, OSError):  # local disk: full, read-only, root removed under us
                    raise PullError(f"writing the model under {self.root} failed: {e}") from e
                raise

        local_path = os.path.join(final_dir, model_name)
        local_schema = os.path.join(final_dir, schema_name) if schema_name else None
        new_key = key.without_storage()
        if local_schema:
            new_key["schema_path"] = local_schema
        new_key["disk_size_bytes"] = size
        log.info("pulled model", model_id=model_id, local_path=local_path, disk_size_bytes=size)
        return PulledModel(model_id, local_path, local_schema, size, new_key)

    async def remove(self, model_id: str) -> None:
        """Delete `<root>/<modelId>`; removing a model that is not there is fine."""
        final_dir = self.model_dir(model_id)
        lock = self._lock(model_id)
        async with lock:
            await asyncio.to_thread(_remove_path, final_dir)
        if not lock.locked():
            self._locks.pop(model_id, None)

    async def purge(self) -> None:
        """Delete everything under the root (start-up: what is there is from a past life)."""
        if self.root == os.path.sep:
            raise PullInputError("refusing to purge '/' (check ROOT_MODEL_DIR)")

        def purge_all() -> int:
            if not os.path.isdir(self.root):
                os.makedirs(self.root, exist_ok=True)
                return 0
            names = os.listdir(self.root)
            for name in names:
                _remove_path(os.path.join(self.root, name))
            return len(names)

        removed = await asyncio.to_thread(purge_all)
        log.info("purged local models", root=self.root, entries=removed)

    async def close(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.close()


def _remove_path(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def _replace_dir(staging: str, final_dir: str) -> None:
    # A dir left by an earlier load of the same id (e.g. a failed load the mesh retries).
    _remove_path(final_dir)
    os.rename(staging, final_dir)


async def _unwrap(coro: Any) -> None:
    """Await a provider call so that whatever fails surfaces as one PullError (or the cancel)."""
    try:
        await coro
    except BaseExceptionGroup as eg:
        raise _as_pull_error(_first_error(eg)) from eg
    except (PullError, asyncio.CancelledError):
        raise
    except Exception as e:  # a client library's own error type that a provider did not map
        raise _as_pull_error(e) from e


def _as_pull_error(e: BaseException) -> BaseException:
    if isinstance(e, (PullError, asyncio.CancelledError)) or not isinstance(e, Exception):
        return e
    return PullError(f"{type(e).__name__}: {e}")


def _first_error(eg: BaseExceptionGroup) -> BaseException:
    for e in eg.exceptions:
        if isinstance(e, BaseExceptionGroup):
            return _first_error(e)
        if isinstance(e, PullError):
            return e
    first = eg.exceptions[0]
    return first if not isinstance(first, BaseExceptionGroup) else _first_error(first)
