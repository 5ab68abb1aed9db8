"""The modelKey JSON the mesh hands to loadModel (ModelInfo.key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


from modelmesh.config.json_object import parse_json_object
from modelmesh.storage.errors import PullInputError

# Fields that address storage; the adapter gets the key without them after the pull.
STORAGE_FIELDS = ("storage_key", "storage_params", "bucket")


@dataclass(frozen=True)
class ModelKey:
    raw: dict[str, Any] = field(default_factory=dict)  # every field, unknown ones kept
    storage_key: str | None = None
    storage_params: dict[str, Any] = field(default_factory=dict)
    bucket: str | None = None  # legacy field, an s3 bucket
    schema_path: str | None = None

    def without_storage(self) -> dict[str, Any]:
        return {k: v for k, v in self.raw.items() if k not in STORAGE_FIELDS}


def _optional_str(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PullInputError(f"modelKey field {name!r} must be a string, got {type(value).__name__}")
    return value


def parse_model_key(text: str) -> ModelKey:
    """Parse the modelKey JSON; an empty string is an empty key."""
    raw = parse_json_object(text, "modelKey", PullInputError)
    if not raw:
        return ModelKey()
    params = raw.get("storage_params") or {}
    if not isinstance(params, dict):
        raise PullInputError("modelKey field 'storage_params' must be an object")
    return ModelKey(
        raw=raw,
        storage_key=_optional_str(raw, "storage_key"),
        storage_params=params,
        bucket=_optional_str(raw, "bucket"),
        schema_path=_optional_str(raw, "schema_path"),
    )
