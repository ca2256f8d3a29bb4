"""The one fake clock: epoch seconds that move only when a test ticks them (cachetools'
``timer=`` idea). Pass it wherever the code takes ``clock``/``now``; never sleep to age."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A callable returning ``now`` (epoch seconds); ``advance`` moves it forward."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Tick ``seconds`` forward (never backwards: clocks the code reads are monotone)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self.now += seconds
