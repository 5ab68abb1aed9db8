"""Helpers of the controller tests (a module of its own: test modules import it by name,
which a conftest cannot be reliably)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from modelmesh.config.controller import ControllerSettings
from modelmesh.config.settings import load_settings
from modelmesh.controller.kube import NAMESPACE, KubeApi
from modelmesh.controller.manager import Controller


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
                     interval: float = 0.05) -> Any:
    """Await until `check()` (sync or async) returns a truthy value; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except (AssertionError, KeyError, TypeError, IndexError) as e:
            last = e
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


async def ensure_namespace(api: KubeApi, name: str, labels: dict[str, str] | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
    try:
        await api.create(NAMESPACE, body)
    except ApiException as e:
        if e.status != 409:
            raise


def config_map(namespace: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "model-serving-config", "namespace": namespace},
            "data": {"config.yaml": yaml.safe_dump(config)}}


async def start_controller(api: KubeApi, namespace: str, config: dict[str, Any] | None,
                           namespace_scope: bool = True, kv_opener=None, **env: str) -> Controller:
    await ensure_namespace(api, namespace)
    if config is not None:
        await api.apply(config_map(namespace, config))
    settings = load_settings(ControllerSettings, {
        "NAMESPACE": namespace, "NAMESPACE_SCOPE": str(namespace_scope).lower(), "LEADER_ELECT": "false",
        **env})
    # The controller gets its own KubeApi: its default field manager, not the tests'.
    controller = Controller(KubeApi(api.client), settings, CollectorRegistry(), resync_s=60, poll_max_s=0.5,
                            kv_opener=kv_opener)
    await controller.start()
    return controller


def runtime_doc(name: str, namespace: str | None, kind: str = "ServingRuntime") -> dict[str, Any]:
    """A built-in runtime from tests/controller/runtimes as a (Cluster)ServingRuntime."""
    doc = yaml.safe_load((Path(__file__).parent / "runtimes" / f"{name}.yaml").read_text())
    doc["kind"] = kind
    if namespace:
        doc["metadata"]["namespace"] = namespace
    return doc


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)


def predictor_state(obj: dict[str, Any]) -> tuple | None:
    s = obj.get("status") or {}
    if not s.get("activeModelState"):
        return None
    return s["activeModelState"], s.get("targetModelState", ""), s.get("transitionStatus"), s.get("available")


def isvc_state(obj: dict[str, Any]) -> tuple | None:
    ms = (obj.get("status") or {}).get("modelStatus") or {}
    if not ms:
        return None
    ready = {c["type"]: c["status"] for c in obj["status"].get("conditions") or []}.get("Ready")
    states = ms.get("states") or {}
    return states.get("activeModelState"), states.get("targetModelState", ""), ms.get("transitionStatus"), \
        ready == "True"


class StatusHistory:
    """Every distinct status a CR went through, from a watch of the real API server."""

    def __init__(self, api: KubeApi, kind, namespace: str, state: Callable[[dict], tuple | None]) -> None:
        self.api, self.kind, self.namespace, self.state = api, kind, namespace, state
        self.history: dict[str, list[tuple]] = {}
        self.latest: dict[str, dict] = {}
        self._task: asyncio.Task | None = None

    def _record(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        self.latest[name] = obj
        st = self.state(obj)
        seq = self.history.setdefault(name, [])
        if st is not None and (not seq or seq[-1] != st):
            seq.append(st)

    async def start(self) -> "StatusHistory":
        items, rv = await self.api.list(self.kind, self.namespace)
        for obj in items:
            self._record(obj)

        async def run() -> None:
            nonlocal rv
            while True:
                async for event, obj in self.api.watch(self.kind, rv, self.namespace, 120):
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if event in ("ADDED", "MODIFIED"):
                        self._record(obj)

        self._task = asyncio.create_task(run())
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def of(self, name: str) -> list[tuple]:
        return self.history.get(name, [])

    async def reaches(self, name: str, state: tuple, timeout: float = 20.0) -> dict:
        await eventually(lambda: self.of(name) and self.of(name)[-1] == state, timeout,
                         f"{name} status {state} (history {self.of(name)})")
        return self.latest[name]
