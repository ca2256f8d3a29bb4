"""A one-line progress bar on a terminal (stderr), redrawn at most every ``every_s``.

events.jsonl.gz [##########..........]  50%  143,500 lines  61,200/s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]

WIDTH = 20


class Progress:
    """Draws ``label [bar] pct lines rate``; does nothing when ``out`` is None."""

    def __init__(
        self,
        out: TextIO | None,
        *,
        every_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self._next = 0.0
        self._drawn = False

    def line(self, label: str, done: int, total: int, lines: int, note: str = "") -> str:
        """The text of the bar (``done`` of ``total`` bytes)."""
        frac = min(1.0, done / total) if total else 1.0
        filled = int(frac * WIDTH)
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = f"{lines / elapsed:,.0f}/s"
        bar = "#" * filled + "." * (WIDTH - filled)
        text = f"{label} [{bar}] {frac * 100:3.0f}%  {lines:,} lines  {rate}"
        return f"{text}  {note}" if note else text

    def update(self, label: str, done: int, total: int, lines: int, note: str = "") -> None:
        """Redraw, unless drawn less than ``every_s`` ago."""
        if self.out is None:
            return
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.every_s
        self.out.write("\r\x1b[K" + self.line(label, done, total, lines, note))
        self.out.flush()
        self._drawn = True

    def finish(self, label: str, total: int, lines: int) -> None:
        """The last, full bar, and a new line."""
        if self.out is None:
            return
        self._next = 0.0
        self.update(label, total, total, lines)
        self.out.write("\n")
        self.out.flush()
