"""Geometry of the console's two small SVG charts (pure; the templates draw them).

- ``lift_chart``: per variant the relative lift against control and its 95% interval on one
  horizontal axis that always contains 0 (so "crosses zero" is visible at a glance); each
  interval's ends are labelled with their values (the axis itself is padded, so its ends
  are not labelled: they would read as an interval nobody computed).
- ``ratio_chart``: ratios in [0, 1] per time bucket as polylines, broken where a bucket had
  no data (no line is drawn through a gap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LiftChart", "RatioChart", "lift_chart", "ratio_chart"]

WIDTH = 480
ROW_H = 40
PAD = 90  # room for the variant names on the left
RIGHT = 50  # room for the label of an interval ending at the right edge


@dataclass(frozen=True, slots=True)
class LiftBar:
    """One variant's row: interval ends and point in pixels, and the numbers as text."""

    variant: str
    y: float
    x_lo: float
    x_hi: float
    x_point: float | None  # None when control has no conversions (the ratio is undefined)
    label: str
    lo_label: str
    hi_label: str


@dataclass(frozen=True, slots=True)
class LiftChart:
    """The lift chart: its size, the zero line and the rows."""

    width: int
    height: int
    x_zero: float
    bars: list[LiftBar] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def lift_chart(variants: Sequence[dict[str, Any]]) -> LiftChart | None:
    """The chart for a results document's ``variants``; None when no variant has a lift."""
    rows = [v for v in variants if v.get("lift")]
    if not rows:
        return None
    lo = min(0.0, *(float(v["lift"]["ci95"][0]) for v in rows))
    hi = max(0.0, *(float(v["lift"]["ci95"][1]) for v in rows))
    span = (hi - lo) or 1.0
    lo, hi = lo - span * 0.05, hi + span * 0.05

    def x(value: float) -> float:
        return round(PAD + (value - lo) / (hi - lo) * (WIDTH - PAD - RIGHT), 1)

    bars = []
    for i, v in enumerate(rows):
        rel, (a, b) = v["lift"]["relative"], v["lift"]["ci95"]
        point = "–" if rel is None else _pct(rel)
        label = f"{point} [{_pct(a)}, {_pct(b)}]"
        x_rel = None if rel is None else x(rel)
        bars.append(
            LiftBar(v["variant"], 20 + i * ROW_H, x(a), x(b), x_rel, label, _pct(a), _pct(b))
        )
    height = 30 + len(rows) * ROW_H
    return LiftChart(WIDTH, height, x(0.0), bars)


@dataclass(frozen=True, slots=True)
class RatioChart:
    """Ratio series as SVG polyline point lists (one list per unbroken run)."""

    width: int
    height: int
    series: dict[str, list[str]]
    latest: dict[str, float | None]


def ratio_chart(buckets: Sequence[dict[str, Any]], keys: Sequence[str]) -> RatioChart:
    """Polylines of each ``key`` (a ratio in [0, 1] or None) over the buckets."""
    width, height, top = WIDTH, 120, 10
    n = max(1, len(buckets) - 1)
    series: dict[str, list[str]] = {}
    latest: dict[str, float | None] = {}
    for key in keys:
        runs: list[str] = []
        run: list[str] = []
        for i, b in enumerate(buckets):
            value = b.get(key)
            if value is None:
                if run:
                    runs.append(" ".join(run))
                run = []
                continue
            px = round(i / n * (width - 20) + 10, 1)
            py = round(top + (1 - float(value)) * (height - 2 * top), 1)
            run.append(f"{px},{py}")
        if run:
            runs.append(" ".join(run))
        series[key] = runs
        latest[key] = next((b[key] for b in reversed(buckets) if b.get(key) is not None), None)
    return RatioChart(width, height, series, latest)
