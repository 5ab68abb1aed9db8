"""Triton: V2 gRPC repository API, server started with `--model-control-mode=explicit`."""

from __future__ import annotations

import os

from modelmesh.adapters.layouts import triton as layout
from modelmesh.adapters.v2 import V2RepositoryDriver
from modelmesh.config.adapter import AdapterSettings

LAYOUT_DIR = "_triton_models"


class TritonDriver(V2RepositoryDriver):
    display_name = "Triton"


def make_driver(settings: AdapterSettings) -> TritonDriver:
    return TritonDriver(
        f"{settings.runtime_host}:{settings.runtime_port}",
        os.path.join(settings.root_model_dir, LAYOUT_DIR),
        layout.lay_out,
    )
