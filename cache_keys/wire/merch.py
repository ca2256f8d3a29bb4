"""Merchandising rules: their wire form in the edge config and the one function that applies
them to a ranked list (the origin's ranking and both edges' rerank call ``apply_rules``).

A rule, as the edge config carries it (names sorted; segments already hashed)::

    {"name": "spring-deal", "kind": "pin", "skus": ["SKU-7"], "category": "",
     "routes": ["home"], "segments": ["<hseg>"], "position": 1, "factor": 1.0,
     "start_ms": 1764000000000, "end_ms": null}

Kinds: ``pin`` puts the targets at ``position`` (1-based, one place per target, in order);
``boost`` / ``bury`` multiply a target's score by ``factor`` (> 1 / < 1) and re-sort;
``block`` removes targets. A target is one of ``skus``, or every item of ``category``
(a category pin places that category's best item). Empty ``routes`` / ``segments`` mean
every route / segment; ``[start_ms, end_ms)`` is the rule's window.

Order of application: block, then boost and bury, then pins, then the cut to ``k``. The
ranker hands over the top ``k + POOL`` (``pool_size``) so a boosted item from below the
fold can rise; a pinned sku outside the candidates is inserted unless ``excluded`` (the item
mask: out of stock; the cart). A placed item's reason names the rule.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cache_keys.errors import WireError
from cache_keys.segments import is_hseg
from cache_keys.wire import _check as c

__all__ = [
    "MAX_RULES",
    "POOL",
    "RULE_KINDS",
    "MerchRule",
    "Row",
    "active_rules",
    "apply_rules",
    "parse_rules",
    "pool_size",
    "rule_to_json",
]

RULE_KINDS = ("pin", "boost", "bury", "block")
MAX_RULES = 200
MAX_RULE_SKUS = 50
MAX_POSITION = 100
# Candidates ranked past ``k`` when rules are active: how far below the fold a boost reaches.
POOL = 48
_VERB = {"pin": "pinned", "boost": "boosted", "bury": "buried", "block": "blocked"}


@dataclass(frozen=True, slots=True)
class MerchRule:
    """One merchandising rule as edges and the origin apply it."""

    name: str
    kind: str
    skus: tuple[str, ...] = ()
    category: str = ""
    routes: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    position: int = 1
    factor: float = 1.0
    start_ms: int | None = None
    end_ms: int | None = None

    def live(self, route: str, hseg: str, now_ms: int) -> bool:
        """Whether the rule applies to this route and segment at ``now_ms``."""
        if self.routes and route not in self.routes:
            return False
        if self.segments and hseg not in self.segments:
            return False
        if self.start_ms is not None and now_ms < self.start_ms:
            return False
        return self.end_ms is None or now_ms < self.end_ms

    def targets(self, item: str, category: str) -> bool:
        """Whether ``item`` (of ``category``) is one of the rule's targets."""
        return item in self.skus if self.skus else bool(category) and category == self.category

    @property
    def reason(self) -> str:
        """What an item placed by this rule says: ``pinned by merchandising rule spring``."""
        return f"{_VERB[self.kind]} by merchandising rule {self.name}"


class Row(NamedTuple):
    """One ranked item: what both tiers hand to ``apply_rules``."""

    item: str
    score: float
    reason: str
    category: str = ""


def pool_size(k: int, rules: Sequence[MerchRule]) -> int:
    """How many items to rank for an answer of ``k`` under ``rules`` (live ones)."""
    return k + POOL if rules else k


def active_rules(
    rules: Sequence[MerchRule], *, route: str, hseg: str, now_ms: int
) -> tuple[MerchRule, ...]:
    """The rules that apply to this request, in config order."""
    if not rules:
        return ()
    return tuple(r for r in rules if r.live(route, hseg, now_ms))


def _scaled(row: Row, rules: Sequence[MerchRule]) -> Row:
    factor, reason = 1.0, row.reason
    for r in rules:
        if r.targets(row.item, row.category):
            if factor == 1.0 and r.factor != 1.0:
                reason = r.reason
            factor *= r.factor
    if factor == 1.0:
        return row
    # a negative score moves the other way, so a boost still raises it
    score = row.score * factor if row.score >= 0 else row.score / factor
    return Row(row.item, round(score, 6), reason, row.category)


def _pins(
    rows: list[Row], pins: Sequence[MerchRule], excluded: Container[str], blocked: Any
) -> list[tuple[int, Row]]:
    """(0-based place, row) of every pinned item; pinned rows are removed from ``rows``."""
    placed: list[tuple[int, Row]] = []
    taken: set[str] = set()
    for rule in sorted(pins, key=lambda r: (r.position, r.name)):
        place = rule.position - 1
        if rule.skus:
            wanted: list[tuple[str, str]] = [(s, rule.category) for s in rule.skus]
        else:
            best = next((r for r in rows if r.category == rule.category), None)
            wanted = [] if best is None else [(best.item, best.category)]
        for sku, cat in wanted:
            if sku in taken or sku in excluded or blocked(sku, cat):
                continue
            at = next((i for i, r in enumerate(rows) if r.item == sku), None)
            found = rows.pop(at) if at is not None else Row(sku, 0.0, "", cat)
            taken.add(sku)
            placed.append((place, Row(sku, found.score, rule.reason, found.category)))
            place += 1
    return placed


def apply_rules(
    rows: Sequence[Row], rules: Sequence[MerchRule], *, k: int, excluded: Container[str]
) -> list[Row]:
    """``rows`` (best first) with the live ``rules`` applied, cut to ``k`` (pure).

    >>> pin = MerchRule("deal", "pin", skus=("C",), position=1)
    >>> [r.item for r in apply_rules([Row("A", 2.0, "segment"), Row("B", 1.0, "segment")],
    ...                              [pin], k=2, excluded=())]
    ['C', 'A']
    """
    if not rules:
        return list(rows[:k])
    blocks = [r for r in rules if r.kind == "block"]

    def blocked(item: str, category: str) -> bool:
        return any(b.targets(item, category) for b in blocks)

    scaling = [r for r in rules if r.kind in ("boost", "bury")]
    out = [r for r in rows if not blocked(r.item, r.category)]
    if scaling:
        out = [_scaled(r, scaling) for r in out]
        out.sort(key=lambda r: -r.score)  # stable: ties keep the ranker's order
    pins = [r for r in rules if r.kind == "pin"]
    for place, row in _pins(out, pins, excluded, blocked):
        out.insert(min(place, len(out)), row)
    return out[:k]


def _rule(doc: Any, f: str) -> MerchRule:
    d = c.obj(doc, f)
    kind = c.text(d.get("kind"), f"{f}.kind")
    if kind not in RULE_KINDS:
        raise WireError(f"{f}.kind", f"must be one of {list(RULE_KINDS)}")
    skus = tuple(
        c.text(s, f"{f}.skus[{i}]", c.ITEM_RE)
        for i, s in enumerate(c.seq(d.get("skus", []), f"{f}.skus", MAX_RULE_SKUS))
    )
    category = c.text(d.get("category") or "", f"{f}.category", max_len=64)
    if bool(skus) == bool(category):
        raise WireError(f"{f}.skus", "a rule targets either skus or a category")
    segments = tuple(c.seq(d.get("segments", []), f"{f}.segments", 1000))
    if not all(is_hseg(s) for s in segments):
        raise WireError(f"{f}.segments", "must hold hsegs only")
    start, end = d.get("start_ms"), d.get("end_ms")
    return MerchRule(
        name=c.text(d.get("name"), f"{f}.name", c.SLUG_RE),
        kind=kind,
        skus=skus,
        category=category,
        routes=tuple(
            c.text(r, f"{f}.routes", c.SLUG_RE)
            for r in c.seq(d.get("routes", []), f"{f}.routes", 50)
        ),
        segments=segments,
        position=c.integer(d.get("position", 1), f"{f}.position", 1, MAX_POSITION),
        factor=c.number(d.get("factor", 1.0), f"{f}.factor", 0.0, 1000.0),
        start_ms=None if start is None else c.integer(start, f"{f}.start_ms"),
        end_ms=None if end is None else c.integer(end, f"{f}.end_ms"),
    )


def parse_rules(value: Any) -> tuple[MerchRule, ...]:
    """The edge config's ``rules`` section; raises ``WireError`` naming the bad field."""
    return tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(c.seq(value, "rules", MAX_RULES)))


def rule_to_json(rule: MerchRule) -> dict[str, Any]:
    """The JSON-ready form of one rule (``parse_rules`` reads a list of them back)."""
    return {
        "name": rule.name,
        "kind": rule.kind,
        "skus": list(rule.skus),
        "category": rule.category,
        "routes": list(rule.routes),
        "segments": list(rule.segments),
        "position": rule.position,
        "factor": rule.factor,
        "start_ms": rule.start_ms,
        "end_ms": rule.end_ms,
    }
