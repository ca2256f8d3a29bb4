"""A circuit breaker on the origin, with an injectable clock.

closed --(``failure_threshold`` consecutive failures)--> open
open   --(``reset_timeout_s`` elapsed)--> half-open: one trial request is let through
half-open --success--> closed;  --failure--> open again

While open, the proxy answers from stale entries or the default list without touching the
origin, so a struggling origin is not buried under retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Consecutive-failure breaker."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_inflight = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_timeout_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a request may go to the origin now."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_inflight:
            self._trial_inflight = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_inflight = False

    def record_failure(self) -> None:
        self._trial_inflight = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
