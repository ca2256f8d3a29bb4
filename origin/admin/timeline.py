"""Results over time: cumulative conversion lift per UTC day, with both intervals.

The processor counts each shopper's first exposure and first conversion on the UTC day of
the event (``d:<day>:x:<variant>``, ``d:<day>:c:<variant>``); summing days up to and
including day D gives the experiment as it stood at the end of D.

>>> rows = timeline({"d:20000:x:a": 10, "d:20000:c:a": 1, "d:20000:x:b": 10}, ["a", "b"], 0.05)
>>> rows[0]["day"], rows[0]["exposures"]
('2024-10-04', {'a': 10, 'b': 10})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from origin.admin.inference import compare
from origin.admin.metrics import METRICS, Arm

__all__ = ["MAX_DAYS", "timeline"]

MAX_DAYS = 90  # the newest days shown; older ones still count in the cumulative totals
DAY_MS = 86_400_000


def _day_counts(counts: Mapping[str, float]) -> dict[int, dict[str, float]]:
    days: dict[int, dict[str, float]] = {}
    for name, value in counts.items():
        if name.startswith("d:"):
            _, day, rest = name.split(":", 2)
            if day.isdigit():
                days.setdefault(int(day), {})[rest] = value
    return days


def timeline(
    counts: Mapping[str, float], variants: Sequence[str], alpha: float
) -> list[dict[str, Any]]:  # fmt: skip
    """Per day, the cumulative exposures and conversions and each treatment's conversion
    difference from control with its fixed-horizon and always-valid intervals."""
    days = _day_counts(counts)
    total: dict[str, float] = {}
    out = []
    family = max(1, len(variants) - 1)
    for day in sorted(days):
        for name, value in days[day].items():
            total[name] = total.get(name, 0.0) + value
        arms = {v: Arm.of(total, v) for v in variants}
        lifts: dict[str, Any] = {}
        control = arms[variants[0]]
        for v in variants[1:]:
            if not all(0 <= a.conversions <= a.n for a in (arms[v], control)):
                continue  # the whole document reports why (``Arm.problems``)
            cmp = compare(METRICS["conversion"], arms[v], control, alpha, family)
            if cmp is not None:
                lifts[v] = {
                    "difference": cmp["difference"],
                    "ci": cmp["ci"],
                    "sequential_ci": cmp["sequential"]["ci"],
                    "relative": cmp["relative"],
                }
        date = dt.datetime.fromtimestamp(day * DAY_MS / 1000, dt.UTC).date().isoformat()
        out.append(
            {
                "day": date,
                "exposures": {v: arms[v].n for v in variants},
                "conversions": {v: arms[v].conversions for v in variants},
                "lift": lifts,
            }
        )
    return out[-MAX_DAYS:]
