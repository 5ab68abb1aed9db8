"""The mesh's view of a model: ModelInfo type label and key JSON, and the concrete model id."""

from __future__ import annotations

import hashlib
import json

from modelmesh.modelspec.spec import ModelSpec


def type_label(spec: ModelSpec) -> str:
    """`rt:<runtime>` when a runtime is named, else `mt:<fmt>[:<ver>]`, plus `|pv:<protocol>`."""
    if spec.runtime:
        label = f"rt:{spec.runtime}"
    else:
        label = f"mt:{spec.model_type}" + (f":{spec.model_type_version}" if spec.model_type_version else "")
    if spec.protocol:
        label += f"|pv:{spec.protocol}"
    return label


def model_info_key(spec: ModelSpec) -> str:
    """ModelInfo.key: JSON {storage_key, storage_params, model_type{name,version}, schema_path}."""
    key: dict = {}
    if spec.storage_key:
        key["storage_key"] = spec.storage_key
    if spec.storage_params:
        key["storage_params"] = dict(sorted(spec.storage_params.items()))
    model_type = {"name": spec.model_type}
    if spec.model_type_version:
        model_type["version"] = spec.model_type_version
    key["model_type"] = model_type
    if spec.schema_path:
        key["schema_path"] = spec.schema_path
    return json.dumps(key, separators=(",", ":"))


def concrete_model_id(spec: ModelSpec) -> str:
    """`<name>__<owner>-<10 hex>`; the hash covers everything the mesh loads, so any change
    of type, path or key gives a new id and the vmodel transitions to it."""
    digest = hashlib.sha256(
        json.dumps([type_label(spec), spec.path, model_info_key(spec)], separators=(",", ":")).encode()
    ).hexdigest()
    return f"{spec.name}__{spec.owner}-{digest[:10]}"
