"""The results page's text: each metric's figures per variant, formatted for people (pure).

Rates as percentages, differences of rates in percentage points, money with its currency
and thousands separators, counts with separators.

>>> money(22972.674, "USD")
'$22,972.67'
>>> money(-1234.5, "SEK")
'-SEK 1,234.50'
>>> pct(0.0523), pp(-0.0041)
('5.23%', '-0.41 pp')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MetricView", "count", "guardrail_rows", "metric_views", "money", "pct", "pp", "timeline_rows",
]  # fmt: skip

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def money(value: float, currency: str) -> str:
    """An amount in the currency's major unit, with its symbol (or code) and separators."""
    sign = "-" if value < 0 else ""
    symbol = SYMBOLS.get(currency)
    digits = 0 if currency == "JPY" else 2
    amount = f"{abs(value):,.{digits}f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{currency} {amount}"


def pct(value: float, signed: bool = False) -> str:
    """A share as a percentage (two decimals)."""
    return f"{value * 100:+.2f}%" if signed else f"{value * 100:.2f}%"


def pp(value: float) -> str:
    """A difference of two rates in percentage points."""
    return f"{value * 100:+.2f} pp"


def count(value: int) -> str:
    """A count with thousands separators."""
    return f"{value:,}"


@dataclass
class MetricView:
    """One metric's definition and one row per variant (control first)."""

    key: str
    name: str
    definition: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def _value(unit: str, value: float | None, currency: str) -> str:
    if value is None:
        return "–"
    return pct(value) if unit == "rate" else money(value, currency)


def _diff(unit: str, value: float, currency: str) -> str:
    if unit == "rate":
        return pp(value)
    text = money(value, currency)
    return text if text.startswith("-") else "+" + text


def _interval(unit: str, ci: list[float] | None, currency: str) -> str:
    if ci is None:
        return "–"
    return f"[{_diff(unit, ci[0], currency)}, {_diff(unit, ci[1], currency)}]"


def _rel_ci(ci: list[float]) -> str:
    return f"[{pct(ci[0], True)}, {pct(ci[1], True)}]"


def _compared(unit: str, cmp: dict[str, Any], currency: str) -> dict[str, Any]:
    rel, rel_ci, need = cmp["relative"], cmp["relative_ci"], cmp["n_per_arm_for_5pct"]
    return {
        "difference": _diff(unit, cmp["difference"], currency),
        "ci": _interval(unit, cmp["ci"], currency),
        "ci_adjusted": _interval(unit, cmp["ci_adjusted"], currency),
        "relative": "–" if rel is None else pct(rel, signed=True),
        "relative_ci": "–" if rel_ci is None else _rel_ci(rel_ci),
        "sequential": _interval(unit, cmp["sequential"]["ci"], currency),
        "sequential_significant": cmp["sequential"]["significant"],
        "p": f"{cmp['p_value']:.3g}",
        "p_adjusted": f"{cmp['p_adjusted']:.3g}",
        "significant": cmp["significant"],
        "mde": "–" if cmp["mde_relative"] is None else f"±{cmp['mde_relative'] * 100:.1f}%",
        "n_for_5pct": "–" if need is None else count(need),
    }  # fmt: skip


def metric_views(doc: dict[str, Any]) -> list[MetricView]:
    """Per metric of a results document: every variant's value and each treatment's
    comparison with control, as text."""
    currency = doc.get("currency", "USD")
    views = []
    for m in doc.get("metrics", []):
        view = MetricView(m["key"], m["name"], m["definition"])
        for v in doc["variants"]:
            cmp = (v.get("comparisons") or {}).get(m["key"])
            view.rows.append(
                {
                    "variant": v["variant"],
                    "value": _value(m["unit"], v["metrics"].get(m["key"]), currency),
                    "vs": None if cmp is None else _compared(m["unit"], cmp, currency),
                }
            )
        views.append(view)
    return views


def timeline_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per day, each treatment's cumulative conversion difference with both intervals."""
    out = []
    for day in doc.get("timeline", []):
        for variant, lift in day["lift"].items():
            out.append(
                {
                    "day": day["day"],
                    "variant": variant,
                    "exposures": count(sum(day["exposures"].values())),
                    "difference": pp(lift["difference"]),
                    "ci": _interval("rate", lift["ci"], ""),
                    "sequential": _interval("rate", lift["sequential_ci"], ""),
                }
            )
    return out


_GUARDRAIL_NAMES = {"degraded": "Degraded at the edge", "slow": "Slow at the origin",
                    "error": "Errors at the origin"}  # fmt: skip


def guardrail_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per guardrail and arm: the rate with its counts, and a treatment's difference from
    control with both intervals and whether it is worse (always valid)."""
    out = []
    section = doc.get("guardrails") or {"arms": []}
    for key, name in _GUARDRAIL_NAMES.items():
        for arm in section["arms"]:
            g = arm[key]
            cmp = (arm.get("vs_control") or {}).get(key)
            out.append(
                {
                    "guardrail": name,
                    "key": key,
                    "variant": arm["variant"],
                    "rate": "–" if g["rate"] is None else pct(g["rate"]),
                    "counts": f"{count(g['events'])} of {count(g['of'])}",
                    "difference": None if cmp is None else pp(cmp["difference"]),
                    "ci": None if cmp is None else _interval("rate", cmp["ci"], ""),
                    "sequential": None
                    if cmp is None
                    else _interval("rate", cmp["sequential_ci"], ""),
                    "worse": bool(cmp and cmp["worse"]),
                }
            )
    return out
