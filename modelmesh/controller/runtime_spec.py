"""ServingRuntime facts: endpoints, validation (controller.md) and admission rules."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelmesh.controller.quantity import quantity_string

RESERVED_CONTAINERS = ("mm", "rest-proxy", "puller")
RESERVED_VOLUMES = ("storage-config", "etcd-config", "tc-config", "domain-socket", "models-dir")
RESERVED_PORT_NAMES = ("grpc", "http", "prometheus")
RESERVED_PORTS = frozenset([8080, 8085, 8089, 8090, *range(11881, 11900)])

AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
AUTOSCALER_METRICS = "serving.kserve.io/metrics"
AUTOSCALER_TARGET = "serving.kserve.io/targetUtilizationPercentage"
AUTOSCALER_MIN = "serving.kserve.io/min-scale"
AUTOSCALER_MAX = "serving.kserve.io/max-scale"


@dataclass(frozen=True)
class Endpoint:
    """`port:N` or `unix:/path`."""

    port: int = 0
    socket_path: str = ""

    @classmethod
    def parse(cls, raw: str) -> "Endpoint":
        kind, _, value = raw.partition(":")
        if kind == "port" and value.isdigit() and 0 < int(value) < 65536:
            return cls(port=int(value))
        if kind == "unix" and value.startswith("/"):
            return cls(socket_path=value)
        raise ValueError(f"invalid endpoint {raw!r}: expected port:<n> or unix:/<path>")

    def __str__(self) -> str:
        return f"port:{self.port}" if self.port else f"unix:{self.socket_path}"


def is_served(spec: Mapping[str, Any]) -> bool:
    """Runtimes this controller deploys: multiModel and not disabled."""
    return bool(spec.get("multiModel")) and not spec.get("disabled")


def validate_runtime(spec: Mapping[str, Any], builtin_server_types: Sequence[str]) -> list[str]:
    """Why a multiModel ServingRuntime cannot be deployed (empty when it can)."""
    errors: list[str] = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append("spec.containers: at least one container is required")
    names = [c.get("name", "") for c in containers]
    for c in containers:
        name = c.get("name", "")
        if name in RESERVED_CONTAINERS or name.startswith("mm-"):
            errors.append(f"container name {name!r} is reserved")
        if c.get("readinessProbe") is not None:
            errors.append(f"container {name!r} may not set readinessProbe")
        if c.get("lifecycle") is not None:
            errors.append(f"container {name!r} may not set lifecycle")
        resources = c.get("resources") if isinstance(c.get("resources"), Mapping) else {}
        for section in ("limits", "requests"):
            quantities = resources.get(section) if isinstance(resources.get(section), Mapping) else {}
            for resource, value in quantities.items():
                try:
                    quantity_string(value)
                except ValueError:
                    errors.append(f"container {name!r}: resources.{section}.{resource}: "
                                  f"{value!r} is not a quantity")
        for p in c.get("ports") or []:
            if p.get("name") in RESERVED_PORT_NAMES:
                errors.append(f"container {name!r}: port name {p['name']!r} is reserved")
            if p.get("containerPort") in RESERVED_PORTS:
                errors.append(f"container {name!r}: port {p['containerPort']} is reserved")
    for v in spec.get("volumes") or []:
        vname = v.get("name", "")
        if vname in RESERVED_VOLUMES or vname.startswith("mm-"):
            errors.append(f"volume name {vname!r} is reserved")
    socket_dirs = set()
    for field in ("grpcEndpoint", "grpcDataEndpoint"):
        if spec.get(field):
            try:
                endpoint = Endpoint.parse(spec[field])
            except ValueError as e:
                errors.append(f"spec.{field}: {e}")
                continue
            if endpoint.socket_path:
                socket_dirs.add(posixpath.dirname(endpoint.socket_path))
    if "/" in socket_dirs:
        errors.append("unix socket endpoints must be in a directory below /, which is mounted in every container")
    if len(socket_dirs) > 1:
        errors.append(f"unix socket endpoints must share one directory, got {', '.join(sorted(socket_dirs))}")
    adapter = spec.get("builtInAdapter")
    if adapter:
        server_type = adapter.get("serverType", "")
        if server_type not in builtin_server_types:
            errors.append(f"builtInAdapter.serverType {server_type!r} is not one of {', '.join(builtin_server_types)}")
        elif server_type not in names:
            errors.append(f"builtInAdapter.serverType {server_type!r} needs a container named {server_type!r}")
        endpoint = spec.get("grpcEndpoint") or ""
        if endpoint and not re.fullmatch(r"port:\d+", endpoint):
            errors.append("spec.grpcEndpoint must be port:<n> with a builtInAdapter")
    elif not spec.get("grpcEndpoint"):
        errors.append("spec.grpcEndpoint is required without a builtInAdapter")
    return errors


def validate_autoscaler(annotations: Mapping[str, str], spec: Mapping[str, Any]) -> list[str]:
    """The admission webhook's checks of the HPA annotations of a multiModel runtime."""
    errors: list[str] = []
    cls = annotations.get(AUTOSCALER_CLASS)
    if cls is None:
        return errors
    if cls != "hpa":
        return [f"{AUTOSCALER_CLASS} must be hpa, got {cls!r}"]
    metric = annotations.get(AUTOSCALER_METRICS, "cpu")
    if metric not in ("cpu", "memory"):
        errors.append(f"{AUTOSCALER_METRICS} must be cpu or memory, got {metric!r}")

    def as_int(key: str, default: int) -> int | None:
        raw = annotations.get(key, str(default))
        try:
            return int(raw)
        except ValueError:
            errors.append(f"{key} must be an integer, got {raw!r}")
            return None

    target = as_int(AUTOSCALER_TARGET, 80)
    if target is not None and not 1 <= target <= 100:
        errors.append(f"{AUTOSCALER_TARGET} must be 1-100, got {target}")
    lo, hi = as_int(AUTOSCALER_MIN, 1), as_int(AUTOSCALER_MAX, 1)
    if lo is not None and lo < 1:
        errors.append(f"{AUTOSCALER_MIN} must be >= 1, got {lo}")
    if lo is not None and hi is not None and hi < lo:
        errors.append(f"{AUTOSCALER_MAX} ({hi}) must be >= {AUTOSCALER_MIN} ({lo})")
    if spec.get("replicas") is not None:
        errors.append("spec.replicas may not be set together with the hpa autoscaler")
    return errors


def hpa_settings(annotations: Mapping[str, str]) -> tuple[int, int, str, int] | None:
    """(min, max, metric, target %) when the runtime asks for an HPA, else None."""
    if annotations.get(AUTOSCALER_CLASS) != "hpa":
        return None
    lo = int(annotations.get(AUTOSCALER_MIN, "1"))
    hi = max(lo, int(annotations.get(AUTOSCALER_MAX, str(lo))))
    return lo, hi, annotations.get(AUTOSCALER_METRICS, "cpu"), int(annotations.get(AUTOSCALER_TARGET, "80"))
