"""List + watch of one kind with periodic resync, feeding an in-memory store and callbacks.

A resync re-lists everything (and reports objects that vanished while the watch was down),
so a missed event heals within one resync period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from modelmesh.controller.kube import Gone, Kind, KubeApi
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.watch")

Key = tuple[str, str]  # (namespace or "", name)
# on_event(event type ADDED|MODIFIED|DELETED, object, previous object or None)
OnEvent = Callable[[str, dict[str, Any], dict[str, Any] | None], None]


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name", "")


class Watcher:
    def __init__(self, api: KubeApi, kind: Kind, on_event: OnEvent, namespace: str | None = None,
                 resync_s: float = 300.0, label_selector: str = "") -> None:
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.store: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self._on_event = on_event
        self._resync_s = resync_s
        self._selector = label_selector
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"watch-{self.kind.plural}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def items(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (ns, _), o in self.store.items() if namespace is None or ns == namespace]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get((namespace, name))

    def _emit(self, event: str, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        prev = self.store.get(key)
        if event == "DELETED":
            self.store.pop(key, None)
        else:
            self.store[key] = obj
        try:
            self._on_event(event, obj, prev)
        except Exception as e:  # noqa: BLE001 - a callback bug must not kill the watch
            log.error("event handler failed", kind=self.kind.kind, key=str(key), error=repr(e))

    async def _relist(self) -> str:
        items, rv = await self.api.list(self.kind, self.namespace, self._selector)
        seen = set()
        for obj in items:
            key = key_of(obj)
            seen.add(key)
            prev = self.store.get(key)
            self._emit("MODIFIED" if prev else "ADDED", obj)
        for key in [k for k in self.store if k not in seen]:
            self._emit("DELETED", self.store[key])
        self.synced.set()
        return rv

    async def _run(self) -> None:
        delay = 0.5
        loop = asyncio.get_running_loop()
        while True:
            try:
                rv = await self._relist()
                deadline = loop.time() + self._resync_s
                delay = 0.5
                while loop.time() < deadline:
                    timeout = max(1, int(deadline - loop.time()))
                    async for event, obj in self.api.watch(self.kind, rv, self.namespace, timeout, self._selector):
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if event == "BOOKMARK":
                            continue
                        self._emit(event, obj)
            except asyncio.CancelledError:
                raise
            except Gone:
                continue
            except (ApiException, OSError, asyncio.TimeoutError, ValueError) as e:
                log.warning("watch failed, re-listing", kind=self.kind.kind, retry_in_s=delay, error=str(e)[:300])
                await asyncio.sleep(delay)  # backoff before re-listing a failing API
                delay = min(delay * 2, 30)
            except Exception as e:  # noqa: BLE001 - e.g. aiohttp errors; keep watching
                log.warning("watch error, re-listing", kind=self.kind.kind, retry_in_s=delay, error=repr(e)[:300])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
