"""Watch of the mesh's vmodels and registry tables in etcd, so a load result reaches the CR
status as soon as the mesh records it (instead of waiting for the next poll)."""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Callable

from modelmesh.kv import KVStore, WatchCompacted, mesh_key_prefix
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.meshtables")

# on_change(namespace, vmodel id = CR name)
OnChange = Callable[[str, str], None]


def namespace_root(root_prefix: str, namespace: str, controller_namespace: str, namespace_scope: bool) -> str:
    """The etcd root a namespace's mesh uses (see the etcd secret copies)."""
    if namespace_scope or namespace == controller_namespace:
        return root_prefix
    return posixpath.join(root_prefix or "", "mm_ns", namespace)


def vmodel_of_key(key: str, prefix: str) -> str | None:
    rest = key[len(prefix):]
    table, _, ident = rest.partition("/")
    if not ident:
        return None
    if table == "vmodels":
        return ident
    if table == "registry" and "__" in ident:
        return ident.rsplit("__", 1)[0]  # concrete ids are <name>__<owner>-<hash>
    return None


class MeshTableWatch:
    def __init__(self, store: KVStore, root_prefix: str, service_name: str, on_change: OnChange) -> None:
        self.store = store
        self.root_prefix = root_prefix
        self.service_name = service_name
        self._on_change = on_change
        self._tasks: dict[str, asyncio.Task] = {}

    def ensure(self, namespace: str, root: str) -> None:
        if namespace not in self._tasks:
            prefix = mesh_key_prefix(root, "mm", self.service_name)
            self._tasks[namespace] = asyncio.create_task(self._watch(namespace, prefix), name=f"kvwatch-{namespace}")

    async def _watch(self, namespace: str, prefix: str) -> None:
        delay = 0.5
        while True:
            try:
                async for events in self.store.watch_prefix(prefix, 0):
                    delay = 0.5
                    for name in {vmodel_of_key(e.key, prefix) for e in events} - {None}:
                        self._on_change(namespace, name)
            except asyncio.CancelledError:
                raise
            except WatchCompacted:
                continue
            except Exception as e:  # noqa: BLE001 - keep watching; polling covers the gap
                log.warning("mesh table watch failed", namespace=namespace, retry_in_s=delay, error=repr(e)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    async def close(self) -> None:
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        await self.store.close()
