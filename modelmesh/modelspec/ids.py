"""Model and vmodel ids become file and directory names on the runtime side (the puller's
`<models dir>/<id>`, its staging `<id>.<12 hex>`, a runtime's model repository): an id that
cannot be one is refused where it enters, not after failing to load on several instances."""

from __future__ import annotations

# 255-byte file names (ext4, xfs) less the longest suffix put after an id (".<12 hex>").
MAX_ID_BYTES = 240


def id_problem(model_id: str) -> str | None:
    """Why `model_id` cannot be a file name, or None when it can."""
    if not model_id:
        return "must not be empty"
    if model_id in (".", ".."):
        return "must not be '.' or '..'"
    if "/" in model_id or "\\" in model_id:
        return "must not contain a path separator"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in model_id):
        return "must not contain control characters"
    try:
        size = len(model_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid UTF-8"
    if size > MAX_ID_BYTES:
        return f"must be at most {MAX_ID_BYTES} bytes (UTF-8), got {size}"
    return None
