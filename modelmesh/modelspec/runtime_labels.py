"""The label set of a serving runtime and the type constraints that match models to it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def runtime_labels(name: str, spec: Mapping[str, Any], rest_proxy_enabled: bool) -> list[str]:
    """Sorted labels of a runtime's pods: `mt:<fmt>`, `mt:<fmt>:<ver>` (autoSelect formats),
    `pv:<p>` per protocol, `pv:v2` when the REST proxy fronts a grpc-v2 runtime, `rt:<name>`."""
    labels = {f"rt:{name}"}
    for fmt in spec.get("supportedModelFormats") or []:
        if not fmt.get("autoSelect") or not fmt.get("name"):
            continue
        labels.add(f"mt:{fmt['name']}")
        if fmt.get("version"):
            labels.add(f"mt:{fmt['name']}:{fmt['version']}")
    protocols = [str(p) for p in spec.get("protocolVersions") or []]
    labels.update(f"pv:{p}" for p in protocols)
    if rest_proxy_enabled and "grpc-v2" in protocols:
        labels.add("pv:v2")
    return sorted(labels)


def type_constraints(runtimes: Iterable[tuple[str, Mapping[str, Any]]], rest_proxy_enabled: bool) -> dict:
    """tc-config `type_constraints`: each label a model can ask for requires itself; a model
    type no runtime knows requires `_no_runtime`, which no pod has."""
    constraints: dict[str, dict[str, list[str]]] = {}
    for name, spec in runtimes:
        labels = runtime_labels(name, spec, rest_proxy_enabled)
        protocols = sorted({label for label in labels if label.startswith("pv:")})
        for label in labels:
            if label.startswith("pv:"):
                continue
            constraints[label] = {"required": [label]}
            for pv in protocols:
                constraints[f"{label}|{pv}"] = {"required": [label, pv]}
    constraints["_default"] = {"required": ["_no_runtime"]}
    return dict(sorted(constraints.items()))
