"""Custom runtimes in the config dir: a ServingRuntime (or ClusterServingRuntime) that says how
to start its model server on this machine, with a command instead of an image.

    spec:
      supportedModelFormats: [{name: my-format, autoSelect: true}]
      grpcDataEndpoint: "port:8001"      # where it serves inference
      grpcEndpoint: "port:8085"          # the ModelRuntime SPI, when it implements it itself
      containers:
        - name: server
          command: [/path/to/server]     # + args; $(VAR) expands from env, as Kubernetes does
          args: ["--models", "$(MODELMESH_MODELS_DIR)"]
          env: [{name: X, value: "y"}]
      builtInAdapter: {serverType: mlserver, runtimeManagementPort: 8001}   # optional

With `builtInAdapter` the built-in adapter drives the server (as on a cluster); without it the
server implements the SPI on `grpcEndpoint` and the puller sits in front of it. The ports are
the ones declared, so a custom runtime runs one instance. MODELMESH_MODELS_DIR is where the
adapter or puller lays out the models (the `/models` volume of a runtime pod).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmesh.apps.local.runtimes import BUILTIN, ServerLaunch, child_env
from modelmesh.modelspec.runtime_labels import runtime_labels

SERVER_TYPES = ("mlserver", "triton", "ovms", "torchserve")
MODELS_DIR_VAR = "MODELMESH_MODELS_DIR"
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class InvalidRuntime(ValueError):
    """A runtime document that cannot be started; the message is one line."""


def _port(endpoint: Any, what: str) -> int:
    kind, _, value = str(endpoint or "").partition(":")
    if kind != "port" or not value.isdigit() or not 0 < int(value) < 65536:
        raise InvalidRuntime(f"{what} must be port:N on this machine, got {endpoint!r}")
    return int(value)


def _expand(value: str, env: Mapping[str, str]) -> str:
    return _REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


@dataclass(frozen=True)
class CustomRuntime:
    name: str
    spec: dict[str, Any]
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    server_type: str | None = None  # None: the server implements the SPI, the puller fronts it
    data_port: int = 0
    management_port: int = 0  # the built-in adapter's RUNTIME_PORT
    spi_port: int = 0  # the server's own SPI (no built-in adapter)
    models_subdir: str = ""
    fixed_ports: bool = True

    def labels(self) -> list[str]:
        return runtime_labels(self.name, self.spec, rest_proxy_enabled=True)

    def missing(self) -> str | None:
        return None  # a command that cannot run fails at start with its name

    def launch(self, models_dir: Path, grpc_port: int, http_port: int, metrics_port: int) -> ServerLaunch:
        models_dir.mkdir(parents=True, exist_ok=True)
        env = {**child_env(""), **self.env, MODELS_DIR_VAR: str(models_dir)}
        cmd = [_expand(part, env) for part in self.command]
        ports = (self.data_port,) if self.server_type else (self.data_port, self.spi_port)
        return ServerLaunch(cmd, env, None, self.management_port or self.data_port, self.data_port,
                            ready_ports=tuple(sorted(set(ports))))


def parse_custom_runtime(doc: Mapping[str, Any]) -> CustomRuntime:
    name = str(((doc.get("metadata") or {}).get("name")) or "")
    if not name:
        raise InvalidRuntime("metadata.name is required")
    if name in BUILTIN:
        raise InvalidRuntime(f"{name} is a built-in runtime here; give a custom runtime another name")
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidRuntime("spec must be a mapping")
    if spec.get("disabled"):
        raise InvalidRuntime("disabled")
    formats = spec.get("supportedModelFormats") or []
    if not isinstance(formats, list) or not all(isinstance(f, Mapping) and f.get("name") for f in formats):
        raise InvalidRuntime("spec.supportedModelFormats must be a list of {name, version, autoSelect}")
    containers = spec.get("containers") or []
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], Mapping):
        raise InvalidRuntime("spec.containers[0] with a command is required (how to start it on this machine)")
    c = containers[0]
    command = [str(x) for x in (c.get("command") or [])] + [str(x) for x in (c.get("args") or [])]
    if not c.get("command"):
        raise InvalidRuntime("spec.containers[0].command is required in local mode (an image cannot run here)")
    env = {str(e["name"]): str(e.get("value", "")) for e in (c.get("env") or [])
           if isinstance(e, Mapping) and e.get("name")}
    data_port = _port(spec.get("grpcDataEndpoint"), "spec.grpcDataEndpoint")
    adapter = spec.get("builtInAdapter") or {}
    server_type = adapter.get("serverType") if isinstance(adapter, Mapping) else None
    if server_type:
        server_type = str(server_type).lower()
        if server_type not in SERVER_TYPES:
            raise InvalidRuntime(f"spec.builtInAdapter.serverType must be one of {', '.join(SERVER_TYPES)}")
        management = int(adapter.get("runtimeManagementPort") or data_port)
        spi = 0
    else:
        management = 0
        spi = _port(spec.get("grpcEndpoint"), "spec.grpcEndpoint (the runtime's SPI, without builtInAdapter)")
    return CustomRuntime(
        name=name, spec={"supportedModelFormats": list(formats),
                         "protocolVersions": list(spec.get("protocolVersions") or ["grpc-v2"])},
        command=tuple(command), env=env, server_type=server_type or None, data_port=data_port,
        management_port=management, spi_port=spi,
        models_subdir={"mlserver": "_mlserver_models", "triton": "_triton_models"}.get(server_type or "", ""),
    )
