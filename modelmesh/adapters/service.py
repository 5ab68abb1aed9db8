"""The adapter as one object: driver for SERVER_TYPE, optional puller, SPI gRPC server."""

from __future__ import annotations

import importlib
import os

import grpc

from modelmesh.adapters.driver import ModelServerDriver
from modelmesh.adapters.runtime import ModelPuller, ModelRuntime, RuntimeLimits
from modelmesh.config.adapter import AdapterSettings
from modelmesh.observability.logging import get_logger
from modelmesh.protos.model_runtime_pb2_grpc import add_ModelRuntimeServicer_to_server

log = get_logger("modelmesh.adapters.service")

DRIVER_MODULES = {
    "triton": "modelmesh.adapters.triton",
    "mlserver": "modelmesh.adapters.mlserver",
    "ovms": "modelmesh.adapters.ovms",
    "torchserve": "modelmesh.adapters.torchserve",
}


def make_driver(settings: AdapterSettings) -> ModelServerDriver:
    return importlib.import_module(DRIVER_MODULES[settings.server_type]).make_driver(settings)


def limits_from(settings: AdapterSettings) -> RuntimeLimits:
    return RuntimeLimits(
        capacity_bytes=max(0, settings.container_mem_req_bytes - settings.mem_buffer_bytes),
        loading_concurrency=settings.loading_concurrency,
        loading_timeout_ms=settings.loadtime_timeout_ms,
        default_model_size=settings.default_model_size,
        size_multiplier=settings.size_multiplier,
        runtime_version=settings.runtime_version,
        limit_per_model_concurrency=settings.limit_per_model_concurrency,
    )


def make_puller(settings: AdapterSettings) -> ModelPuller | None:
    if not settings.use_embedded_puller:
        return None
    from modelmesh.storage.puller import Puller

    return Puller.from_settings(settings)


class AdapterService:
    """Start: open the driver, bind the SPI. The model server may still be starting;
    runtimeStatus tells the mesh when it is ready."""

    def __init__(self, settings: AdapterSettings, driver: ModelServerDriver | None = None,
                 puller: ModelPuller | None = None) -> None:
        self.settings = settings
        self.driver = driver or make_driver(settings)
        self.puller = puller if puller is not None else make_puller(settings)
        self.runtime = ModelRuntime(self.driver, limits_from(settings), self.puller, settings.root_model_dir)
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> None:
        os.makedirs(self.driver.layout_root, exist_ok=True)
        await self.driver.start()
        self.server = grpc.aio.server()
        add_ModelRuntimeServicer_to_server(self.runtime, self.server)
        address = f"{self.settings.adapter_host}:{self.settings.adapter_port}"
        self.port = self.server.add_insecure_port(address)
        await self.server.start()
        log.info("ModelRuntime SPI serving", address=f"{self.settings.adapter_host}:{self.port}",
                 server_type=self.settings.server_type, embedded_puller=self.puller is not None)

    async def stop(self, grace_s: float = 5.0) -> None:
        if self.server is not None:
            await self.server.stop(grace_s)
        await self.driver.close()
        close = getattr(self.puller, "close", None)
        if close is not None:
            await close()
