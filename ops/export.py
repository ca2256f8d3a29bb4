"""``p13n export training --from --to``: point-in-time-correct examples from the lake.

Each shopper's events are folded through the processor's own feature operator
(``segmenter.features.apply``) in arrival order from the start of the lake; every item event
(view, add to cart, purchase) whose event time falls in [from, to) becomes one example with
the features as they stood just *before* it, never the online store's current values::

    view sku-2 at t3   ->  f_orders = 1 (the purchase at t2 < t3), f_item_bought = 0, …

The label looks ahead, as labels do: ``purchased_24h`` is whether the shopper bought the
same item within 24 hours after the event (the event itself counts when it is a purchase).
Client retries are dropped (first arrival of an event id on its UTC day), as the stream does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from segmenter import features
from segmenter.aggregates import Entry
from segmenter.event import Event
from segmenter.features import FeatureParams, ShopperState
from segmenter.lake import LakeError, events_glob, has_events, write_table
from segmenter.reconcile import lake_entries

__all__ = ["COLUMNS", "ExportReport", "export_training"]

DAY_MS = 86_400_000
LABEL_MS = DAY_MS
EXAMPLE_TYPES = frozenset({"view", "add_to_cart", "purchase"})
COLUMNS: dict[str, str] = {
    "stream_id": "VARCHAR", "ts": "BIGINT", "user": "VARCHAR", "session": "VARCHAR",
    "type": "VARCHAR", "item": "VARCHAR", "category": "VARCHAR", "price": "DOUBLE",
    "position": "BIGINT",
    "f_segment": "VARCHAR", "f_events": "BIGINT", "f_orders": "BIGINT",
    "f_cart_items": "BIGINT", "f_avg_price": "DOUBLE", "f_days_active": "DOUBLE",
    "f_top_category": "VARCHAR", "f_category_affinity": "DOUBLE",
    "f_item_recent_rank": "BIGINT", "f_item_in_cart": "BIGINT", "f_item_bought": "BIGINT",
    "f_since_last_ms": "BIGINT",
    "purchased_24h": "BOOLEAN",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExportReport:
    path: Path
    examples: int
    shoppers: int

    def line(self) -> str:
        return f"exported {self.examples} examples of {self.shoppers} shoppers to {self.path}"


def _features(s: ShopperState, ev: Event, half_life_ms: int) -> dict[str, Any]:
    """The point-in-time features of ``ev``: from ``s``, the state before it."""
    p = features.profile(s, half_life_ms) if s.last_id else {}
    score, as_of = s.aff.get(ev.category, (0.0, ev.ts))
    last = int(s.num("last_ms")) if s.last_id else None
    return {
        "f_segment": s.scalars.get("seg"),
        "f_events": int(p.get("events", 0)),
        "f_orders": int(p.get("orders", 0)),
        "f_cart_items": int(p.get("cart_items", 0)),
        "f_avg_price": p.get("avg_price", 0.0),
        "f_days_active": p.get("days_active", 0.0),
        "f_top_category": p.get("top_category") or None,
        "f_category_affinity": score * 0.5 ** (max(0, ev.ts - as_of) / half_life_ms),
        "f_item_recent_rank": s.recent.index(ev.item) if ev.item in s.recent else None,
        "f_item_in_cart": s.cart.get(ev.item, 0),
        "f_item_bought": s.bought.get(ev.item, (0, 0))[0],
        "f_since_last_ms": ev.ts - last if last is not None else None,
    }


def _label(rows: list[dict[str, Any]], ev: Event) -> None:
    """A purchase marks the same item's examples of the 24 hours before it."""
    for row in reversed(rows):
        if row["ts"] < ev.ts - LABEL_MS:
            break
        if row["item"] == ev.item and row["ts"] <= ev.ts:
            row["purchased_24h"] = True


def _partition_examples(
    entries: Iterator[Entry], params: FeatureParams, from_ms: int, to_ms: int
) -> tuple[list[dict[str, Any]], set[str]]:
    states: dict[str, ShopperState] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[int, str]] = set()
    for e in entries:
        ev = e.event
        if ev is None or (ev.ts // DAY_MS, ev.event_id) in seen:
            continue
        seen.add((ev.ts // DAY_MS, ev.event_id))
        before = states.get(ev.user) or ShopperState()
        mine = rows.setdefault(ev.user, [])
        if ev.type in EXAMPLE_TYPES and from_ms <= ev.ts < to_ms:
            mine.append({
                "stream_id": e.stream_id, "ts": ev.ts, "user": ev.user,
                "session": ev.session or None, "type": ev.type, "item": ev.item,
                "category": ev.category or None, "price": ev.price, "position": ev.position,
                **_features(before, ev, params.half_life_ms), "purchased_24h": False,
            })  # fmt: skip
        if ev.type == "purchase":
            _label(mine, ev)
        states[ev.user] = features.apply(before, [(e.stream_id, ev)], params)
    return [r for user_rows in rows.values() for r in user_rows], {u for u, r in rows.items() if r}


def _partitions(lake: Path) -> list[int]:
    if not has_events(lake):
        return []
    try:
        with duckdb.connect() as db:
            rows = db.execute(
                "SELECT DISTINCT partition FROM read_parquet(?, union_by_name = true) ORDER BY 1",
                [events_glob(lake)],
            ).fetchall()
    except duckdb.Error as exc:
        raise LakeError(str(exc)) from exc
    return [int(r[0]) for r in rows]


def export_training(
    lake: Path, out: Path, params: FeatureParams, *, from_ms: int, to_ms: int
) -> ExportReport:
    """Write the examples of [from, to) to ``out`` (Parquet); returns the counts."""
    examples: list[dict[str, Any]] = []
    shoppers: set[str] = set()
    for p in _partitions(lake):
        rows, users = _partition_examples(
            lake_entries(lake, p, f"{2**62}-0"), params, from_ms, to_ms
        )
        examples.extend(rows)
        shoppers |= users
    examples.sort(key=lambda r: (r["ts"], r["stream_id"]))
    n = write_table(examples, out, COLUMNS)
    return ExportReport(out, n, len(shoppers))
