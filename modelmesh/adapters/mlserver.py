"""MLServer: the V2 gRPC repository API (models dir = <ROOT_MODEL_DIR>/_mlserver_models,
load_models_at_startup false)."""

from __future__ import annotations

import os

import grpc

from modelmesh.adapters.layouts import mlserver as layout
from modelmesh.adapters.v2 import V2RepositoryDriver
from modelmesh.config.adapter import AdapterSettings

LAYOUT_DIR = "_mlserver_models"


class MLServerDriver(V2RepositoryDriver):
    display_name = "MLServer"
    # MLServer answers an unload of a model it does not know with INVALID_ARGUMENT.
    unknown_model_codes = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})


def make_driver(settings: AdapterSettings) -> MLServerDriver:
    return MLServerDriver(
        f"{settings.runtime_host}:{settings.runtime_port}",
        os.path.join(settings.root_model_dir, LAYOUT_DIR),
        layout.lay_out,
    )
