"""A circuit breaker on the origin, with an injectable clock.

closed --(``failure_threshold`` consecutive failures)--> open
open   --(``reset_timeout_s`` elapsed)--> half-open: one trial request is let through
half-open --success--> closed;  --failure--> open again

A failure is the origin being unreachable, timing out, or answering 502, 503 or 504 (it or
its gateway says it cannot serve). A 500 is one resource's error, not the origin's health:
counting it would let any client open the breaker for everybody by asking for a broken URL.
A trial that ends without an answer either way (the request was cancelled, or it failed
before reaching the origin) gives the trial back.

While open, the proxy answers from stale entries or the default list without touching the
origin, so a struggling origin is not buried under retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ORIGIN_DOWN_STATUSES", "CircuitBreaker"]

ORIGIN_DOWN_STATUSES = frozenset({502, 503, 504})


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

    def record_status(self, status: int) -> None:
        """Record an origin answer: a failure when it says the origin cannot serve."""
        if status in ORIGIN_DOWN_STATUSES:
            self.record_failure()
        else:
            self.record_success()

    def abandon(self) -> None:
        """The request let through ended with no verdict on the origin: free the trial."""
        self._trial_inflight = False

    def record_failure(self) -> None:
        self._trial_inflight = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
