"""Request rates of this instance and of each model it serves, measured over windows of at
least a few seconds from the router's request counts (for the instance record's `rpm` and
for scaling hot models to a second copy)."""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_S = 5.0


class RequestRates:
    def __init__(self, take_counts: Callable[[], dict[str, int]]) -> None:
        """`take_counts()` returns the requests per model since its last call."""
        self._take_counts = take_counts
        self._window_start = time.monotonic()
        self.rpm = 0
        self.model_rpm: dict[str, int] = {}

    def measure(self) -> bool:
        """Close the window if it is long enough; True when new rates were measured."""
        elapsed = time.monotonic() - self._window_start
        if elapsed < WINDOW_S:
            return False
        counts = self._take_counts()
        self._window_start = time.monotonic()
        self.model_rpm = {m: int(n * 60 / elapsed) for m, n in counts.items()}
        self.rpm = sum(self.model_rpm.values())
        return True

    def hot_models(self, threshold_rpm: int) -> list[str]:
        """Models at or above the threshold in the last window, each reported once."""
        hot = [m for m, rpm in self.model_rpm.items() if rpm >= threshold_rpm]
        for m in hot:
            self.model_rpm[m] = 0
        return hot
