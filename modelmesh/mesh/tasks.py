"""The owner of an instance's background tasks: each spawned task is kept until it ends, a
failure is logged with its traceback (never lost in an unawaited task), and close()
cancels whatever is still running."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.tasks")


class TaskOwner:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task | None:
        """Run `coro` in the background; None (and the coroutine closed) once closed."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background task failed", task=task.get_name(), error=repr(error), exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every task still running and wait for them to end."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
