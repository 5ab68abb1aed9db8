"""Retries with exponential backoff and jitter, for transient storage failures only."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from modelmesh.observability.logging import get_logger
from modelmesh.storage.errors import TransientError

log = get_logger("modelmesh.storage.retry")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries, the first included
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay(self, attempt: int) -> float:
        # "Full jitter": spreads retries of many parallel parts after one server hiccup.
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * (2 ** attempt)))


async def with_retries(policy: RetryPolicy, what: str, op: Callable[[], Awaitable[T]]) -> T:
    """Run `op`; on TransientError wait and try again, up to policy.attempts in total.

    The last TransientError propagates (it is a PullError, so callers report it as is).
    """
    for attempt in range(policy.attempts):
        try:
            return await op()
        except TransientError as e:
            if attempt + 1 >= policy.attempts:
                raise TransientError(f"{e} (gave up after {policy.attempts} attempts)") from e
            delay = policy.delay(attempt)
            log.warning("transient storage error, retrying", what=what, error=str(e), attempt=attempt + 1,
                        delay_s=round(delay, 3))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
