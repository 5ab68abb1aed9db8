"""OpenVINO Model Server: no repository API; the adapter owns OVMS's config JSON.

Every change rewrites `{"model_config_list": [{"config": {"name": id, "base_path": dir}}]}`
and calls `POST /v1/config/reload`. Loads arriving within BATCH_WAIT_TIME_MIN share one
reload (a reload re-reads every model's state, so one per load would serialize them).
A load succeeds iff the model's first version state is AVAILABLE afterwards. Unloads also
wait for the reload, so files are removed only after OVMS has let go of them.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from modelmesh.adapters.errors import ServerLoadError, ServerUnavailable
from modelmesh.adapters.files import write_atomic
from modelmesh.adapters.layouts import ovms as layout
from modelmesh.config.adapter import AdapterSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.adapters.ovms")

LAYOUT_DIR = "_ovms_models"
CONFIG_FILE = "model_config_list.json"


@dataclass
class _Batch:
    """Changes gathered for one reload; `done` gets OVMS's per-model status map."""

    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def config_json(models: dict[str, str]) -> str:
    return json.dumps({
        "model_config_list": [{"config": {"name": name, "base_path": path}} for name, path in sorted(models.items())]
    })


def load_outcome(statuses: dict[str, Any], model_id: str) -> str | None:
    """None if OVMS serves the model, else why not."""
    entry = statuses.get(model_id)
    versions = entry.get("model_version_status") if isinstance(entry, dict) else None
    if not versions:
        return "OVMS reported no status for the model after the config reload"
    first = versions[0]
    if first.get("state") == "AVAILABLE":
        return None
    status = first.get("status") or {}
    return (f"OVMS model load failed: state {first.get('state')!r}, code {status.get('error_code')!r}, "
            f"reason {status.get('error_message')!r}")


class OvmsDriver:
    display_name = "OVMS"
    method_infos = {
        "tensorflow.serving.PredictionService/Predict": (1, 1),  # Predict.model_spec.name
        "inference.GRPCInferenceService/ModelInfer": (1,),
        "inference.GRPCInferenceService/ModelMetadata": (1,),
    }
    reports_size = False

    def __init__(self, base_url: str, layout_root: str, config_file: str, batch_wait_s: float,
                 reload_timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.layout_root = layout_root
        self.config_file = config_file
        self.owned_files = (config_file,)  # kept by the start-up purge
        self.batch_wait_s = batch_wait_s
        self.reload_timeout_s = reload_timeout_s
        self._models: dict[str, str] = {}  # what the config file should say: id -> base_path
        self._batch: _Batch | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.reload_timeout_s))
        os.makedirs(os.path.dirname(self.config_file) or ".", exist_ok=True)
        if not os.path.exists(self.config_file):
            write_atomic(self.config_file, config_json({}))  # OVMS needs the file to exist at start

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "driver not started"
        return self._session

    async def is_ready(self) -> bool:
        try:
            async with self.session.get(f"{self.base_url}/v1/config", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def version(self) -> str:
        try:
            async with self.session.get(f"{self.base_url}/v2") as r:
                return str((await r.json(content_type=None)).get("version", "")) if r.status == 200 else ""
        except (TimeoutError, aiohttp.ClientError, ValueError, AttributeError):
            return ""

    def lay_out(self, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
        return layout.lay_out(self.layout_root, model_id, model_type, model_path, schema_path)

    async def load(self, model_id: str, laid_out: str) -> None:
        # On failure the model stays in the config until the servicer's undo calls unload,
        # whose reload then drops it from OVMS before the error is returned.
        self._models[model_id] = laid_out
        problem = load_outcome(await self._next_reload(), model_id)
        if problem is not None:
            raise ServerLoadError(problem)

    async def unload(self, model_id: str) -> None:
        if self._models.pop(model_id, None) is not None:
            await self._next_reload()

    async def unload_all(self) -> None:
        self._models.clear()
        await self._next_reload()

    async def model_size(self, model_id: str) -> int | None:
        return None

    async def _next_reload(self) -> dict[str, Any]:
        """Join the batch being gathered (or open one) and wait for its reload."""
        if self._batch is None:
            self._batch = _Batch()
            task = asyncio.ensure_future(self._run_batch(self._batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(self._batch.done)

    async def _run_batch(self, batch: _Batch) -> None:
        await asyncio.sleep(self.batch_wait_s)
        async with self._reload_lock:
            if self._batch is batch:
                self._batch = None  # later changes go to the next reload
            try:
                batch.done.set_result(await self._reload())
            except Exception as e:  # noqa: BLE001 - every waiter gets the reason
                batch.done.set_exception(e)
                batch.done.exception()  # waiters may all have been cancelled; mark retrieved

    async def _reload(self) -> dict[str, Any]:
        write_atomic(self.config_file, config_json(self._models))
        try:
            async with self.session.post(f"{self.base_url}/v1/config/reload") as r:
                body = await r.read()
                if r.status in (200, 201):
                    return json.loads(body)
                log.warning("OVMS config reload answered an error", status=r.status,
                            body=body[:500].decode(errors="replace"))
            # A failed reload does not list model states; the status API does.
            async with self.session.get(f"{self.base_url}/v1/config") as r:
                body = await r.read()
                if r.status == 200:
                    return json.loads(body)
                detail = body[:300].decode(errors="replace")
                raise ServerLoadError(f"OVMS config status answered HTTP {r.status}: {detail}")
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ServerUnavailable(f"OVMS at {self.base_url} is not reachable: {e or type(e).__name__}") from None
        except ValueError as e:
            raise ServerLoadError(f"OVMS answered a config reload with invalid JSON: {e}") from None


def make_driver(settings: AdapterSettings) -> OvmsDriver:
    return OvmsDriver(
        f"http://{settings.runtime_host}:{settings.runtime_port}",
        os.path.join(settings.root_model_dir, LAYOUT_DIR),
        settings.model_config_file or os.path.join(settings.root_model_dir, CONFIG_FILE),
        settings.batch_wait_ms / 1000,
        settings.ovms_reload_timeout_ms / 1000,
    )
