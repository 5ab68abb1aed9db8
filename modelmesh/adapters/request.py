"""What loadModel asks for, parsed once: model id, type, local paths and size hints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelmesh.config.json_object import parse_json_object
from modelmesh.adapters.errors import InvalidModel
from modelmesh.storage import paths as storage_paths


@dataclass(frozen=True)
class ModelRequest:
    model_id: str
    model_type: str  # lower-case name without version ("sklearn", "onnx", ...), "" if unknown
    model_path: str
    schema_path: str | None = None
    disk_size_bytes: int | None = None
    key: dict[str, Any] = field(default_factory=dict)


def check_model_id(model_id: str) -> None:
    """A model id becomes a directory name: refuse anything that is not a plain name
    (the same rule the puller applies to its own dirs)."""
    try:
        storage_paths.check_model_id(model_id)
    except ValueError as e:
        raise InvalidModel(str(e)) from None


def parse_key(text: str) -> dict[str, Any]:
    return parse_json_object(text, "modelKey", InvalidModel)


def model_type_of(key: dict[str, Any], fallback: str) -> str:
    """`model_type` from the key ({name, version} or a plain string), else the request's type.

    The mesh's type label may read `mt:onnx:1` or carry `|pv:...`; only the name counts.
    """
    raw = key.get("model_type")
    name = raw.get("name", "") if isinstance(raw, dict) else raw if isinstance(raw, str) else ""
    if not name:
        name = fallback.split("|", 1)[0]
        if name.startswith("mt:"):
            name = name[3:]
        elif name.startswith("rt:"):
            name = ""
    return name.split(":", 1)[0].strip().lower()


def disk_size_of(key: dict[str, Any]) -> int | None:
    value = key.get("disk_size_bytes")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return int(value)


def schema_path_of(key: dict[str, Any]) -> str | None:
    value = key.get("schema_path")
    return value if isinstance(value, str) and value else None
