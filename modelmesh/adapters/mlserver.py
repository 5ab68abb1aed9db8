"""MLServer: the V2 gRPC repository API (models dir = <ROOT_MODEL_DIR>/_mlserver_models,
load_models_at_startup false)."""

from __future__ import annotations

import asyncio
import os

import grpc

from modelmesh.adapters.layouts import mlserver as layout
from modelmesh.adapters.v2 import V2RepositoryDriver
from modelmesh.config.adapter import AdapterSettings
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.adapters.mlserver")

LAYOUT_DIR = "_mlserver_models"


class MLServerDriver(V2RepositoryDriver):
    display_name = "MLServer"
    # MLServer answers an unload of a model it does not know with INVALID_ARGUMENT.
    unknown_model_codes = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})

    async def load(self, model_id: str, laid_out: str) -> None:
        await super().load(model_id, laid_out)
        # Every later load would parse this model's settings again (layouts/mlserver.py).
        try:
            await asyncio.to_thread(layout.hide_settings, laid_out)
        except OSError as e:  # the model serves; only later loads are slower
            log.warning("could not hide loaded model's settings from MLServer's repository scan",
                        model_id=model_id, error=str(e))

    async def unload_all(self) -> None:
        # Loaded models' settings are hidden, so MLServer's RepositoryIndex does not list them.
        for model_id in await asyncio.to_thread(layout.hidden_model_ids, self.layout_root):
            await self.unload(model_id)
            log.info("unloaded leftover model", model_id=model_id)
        await super().unload_all()


def make_driver(settings: AdapterSettings) -> MLServerDriver:
    return MLServerDriver(
        f"{settings.runtime_host}:{settings.runtime_port}",
        os.path.join(settings.root_model_dir, LAYOUT_DIR),
        layout.lay_out,
    )
