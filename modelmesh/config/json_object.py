"""One reader for the JSON objects users hand us as text (type constraints, data-plane
config, model keys, schemas, model settings): the same checks, the same clear errors."""

from __future__ import annotations

from typing import Any

import orjson


def parse_json_object(text: str | bytes, what: str, error: type[Exception] = ValueError, *,
                      empty_ok: bool = True, shape: str = "") -> dict[str, Any]:
    """`text` as a JSON object; blank text is `{}` when `empty_ok`. Invalid JSON or another
    JSON type raises `error` naming `what` (`shape` describes the expected object)."""
    if empty_ok and (not text or not text.strip()):
        return {}
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise error(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise error(f"{what} must be a JSON object{shape}")
    return data
