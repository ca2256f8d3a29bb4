"""Segment rules from a config file, and the pure ``segment(profile, rules)``.

    profile {"orders": 2, "top_category": "grocery", "avg_price": 42.0, …}
        -> "returning|grocery|mid"   (with the built-in ``segments.toml``)

A dimension is either ``rules`` (first rule whose bounds all hold wins) or a categorical
``feature`` with allowed ``values``; both fall back to ``otherwise``. The product of the
dimensions' value counts is bounded by ``max_segments`` (at most 1,000, the edge config's cap).
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORICAL_FEATURES",
    "NUMERIC_FEATURES",
    "Dimension",
    "Rule",
    "SegmentRules",
    "SegmentRulesError",
    "load_rules",
    "parse_rules",
    "segment",
]

NUMERIC_FEATURES = frozenset({"events", "orders", "cart_items", "avg_price", "days_active"})
CATEGORICAL_FEATURES = frozenset({"top_category"})
MAX_SEGMENTS = 1000
MAX_DIMENSIONS = 5
_VALUE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")
DEFAULT_RULES = Path(__file__).with_name("segments.toml")


class SegmentRulesError(ValueError):
    """The rules file is invalid; ``where`` names the place."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


@dataclass(frozen=True, slots=True)
class Rule:
    """``value`` when every ``feature`` lies in [lo, hi)."""

    value: str
    bounds: tuple[tuple[str, float, float], ...]

    def holds(self, profile: Mapping[str, Any]) -> bool:
        return all(lo <= float(profile.get(f, 0.0)) < hi for f, lo, hi in self.bounds)


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    otherwise: str
    rules: tuple[Rule, ...] = ()
    feature: str = ""
    values: tuple[str, ...] = ()

    def choices(self) -> tuple[str, ...]:
        own = tuple(r.value for r in self.rules) if self.rules else self.values
        return (*own, self.otherwise)

    def classify(self, profile: Mapping[str, Any]) -> str:
        if self.feature:
            value = str(profile.get(self.feature, ""))
            return value if value in self.values else self.otherwise
        for rule in self.rules:
            if rule.holds(profile):
                return rule.value
        return self.otherwise


@dataclass(frozen=True, slots=True)
class SegmentRules:
    dimensions: tuple[Dimension, ...]
    max_segments: int

    def all_segments(self) -> list[str]:
        """Every segment name the rules can produce, in a stable order."""
        return ["|".join(p) for p in itertools.product(*(d.choices() for d in self.dimensions))]

    def dimension_of(self, feature: str) -> int | None:
        """Index of the dimension driven by ``feature`` (for list building), if any."""
        for i, d in enumerate(self.dimensions):
            if d.feature == feature or any(f == feature for r in d.rules for f, *_ in r.bounds):
                return i
        return None


def segment(profile: Mapping[str, Any], rules: SegmentRules) -> str:
    """The segment name of a shopper profile."""
    return "|".join(d.classify(profile) for d in rules.dimensions)


def _value(v: Any, where: str) -> str:
    if not isinstance(v, str) or not _VALUE_RE.fullmatch(v):
        raise SegmentRulesError(where, f"must match {_VALUE_RE.pattern}")
    return v


def _bound(feature: str, spec: Any, where: str) -> tuple[str, float, float]:
    if feature not in NUMERIC_FEATURES:
        raise SegmentRulesError(where, f"unknown numeric feature {feature!r}")
    if not isinstance(spec, dict) or not spec or set(spec) - {"min", "max"}:
        raise SegmentRulesError(where, "must be a table with min and/or max")
    for k, v in spec.items():
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise SegmentRulesError(f"{where}.{k}", "must be a number")
    return feature, float(spec.get("min", float("-inf"))), float(spec.get("max", float("inf")))


def _rule(doc: Any, where: str) -> Rule:
    if not isinstance(doc, dict) or not isinstance(doc.get("when"), dict) or not doc["when"]:
        raise SegmentRulesError(where, "a rule is {value = …, when = {feature = {min, max}}}")
    bounds = tuple(_bound(f, s, f"{where}.when.{f}") for f, s in doc["when"].items())
    return Rule(_value(doc.get("value"), f"{where}.value"), bounds)


def _dimension(doc: Any, where: str) -> Dimension:
    if not isinstance(doc, dict):
        raise SegmentRulesError(where, "must be a table")
    name = _value(doc.get("name"), f"{where}.name")
    otherwise = _value(doc.get("otherwise"), f"{where}.otherwise")
    if ("rules" in doc) == ("feature" in doc):
        raise SegmentRulesError(where, "needs exactly one of rules or feature")
    if "rules" in doc:
        raw = doc["rules"]
        if not isinstance(raw, list) or not raw:
            raise SegmentRulesError(f"{where}.rules", "must be a non-empty array")
        dim = Dimension(
            name, otherwise, rules=tuple(_rule(r, f"{where}.rules[{i}]") for i, r in enumerate(raw))
        )
    else:
        feature = doc["feature"]
        if feature not in CATEGORICAL_FEATURES:
            raise SegmentRulesError(f"{where}.feature", f"unknown categorical feature {feature!r}")
        values = doc.get("values")
        if not isinstance(values, list) or not values:
            raise SegmentRulesError(f"{where}.values", "must be a non-empty array")
        dim = Dimension(name, otherwise, feature=feature,
                        values=tuple(_value(v, f"{where}.values") for v in values))  # fmt: skip
    if len(set(dim.choices())) != len(dim.choices()):
        raise SegmentRulesError(where, "values must be distinct")
    return dim


def parse_rules(doc: Any) -> SegmentRules:
    """Validate a decoded rules document."""
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise SegmentRulesError("version", "must be 1")
    cap = doc.get("max_segments", 200)
    if not isinstance(cap, int) or not 1 <= cap <= MAX_SEGMENTS:
        raise SegmentRulesError("max_segments", f"must be an integer in 1..{MAX_SEGMENTS}")
    raw = doc.get("dimension")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_DIMENSIONS:
        raise SegmentRulesError("dimension", f"needs 1 to {MAX_DIMENSIONS} [[dimension]] tables")
    dims = tuple(_dimension(d, f"dimension[{i}]") for i, d in enumerate(raw))
    count = 1
    for d in dims:
        count *= len(d.choices())
    if count > cap:
        raise SegmentRulesError("max_segments", f"rules make {count} segments, over {cap}")
    return SegmentRules(dims, cap)


def load_rules(path: str | Path | None = None) -> SegmentRules:
    """Read and validate a rules file (the built-in one when ``path`` is empty)."""
    p = Path(path) if path else DEFAULT_RULES
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SegmentRulesError(str(p), str(exc)) from exc
    return parse_rules(doc)
