"""Running user callbacks (sync or async) without letting their failures escape."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from modelmesh.observability.logging import get_logger

_log = get_logger("modelmesh.kv")


async def run_callback(callback: Callable[..., Awaitable[None] | None], *args: Any, what: str) -> None:
    """Call `callback(*args)`, awaiting it if it is async; log (never raise) its errors,
    since one consumer's bug must not stop a lease monitor or a watched view."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as e:  # noqa: BLE001 - isolate consumer failures
        _log.error("kv callback failed", callback=what, error=repr(e), exc_info=e)
