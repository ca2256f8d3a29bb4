"""Every reason the origin's ranking and the merchandising rules give is a valid rail reason:
an edge parses the origin's per-user answer with ``parse_rail`` and falls back to the segment
list when it cannot, so a reason the contract refuses silently turns a personal rail into a
list one."""

from __future__ import annotations

import pytest

from cache_keys.errors import WireError
from cache_keys.wire import ListItem, MerchRule, Row, apply_rules, parse_rail
from origin.catalog_records import CatalogEntry
from origin.recommend.caches import ListView
from origin.recommend.features import Features
from origin.recommend.ranking import Inputs, Strategy, buy_again, rank

NOW = 1_764_000_000_000
DAY = 86_400_000


def _inputs() -> Inputs:
    bought = {
        "milk": (9, NOW - 7 * DAY, NOW - 63 * DAY, 9),  # due again, own interval known
        "rolls": (1, NOW - 30 * DAY, NOW - 30 * DAY, 1),  # bought once
        "tea": (6, NOW - 1 * DAY, NOW - 60 * DAY, 6),  # bought often, not due
    }
    catalog = {
        sku: CatalogEntry(cat, 1.0, 5, durable=False)
        for sku, cat in [("milk", "dairy"), ("rolls", "bakery"), ("tea", "drinks")]
    }
    segment = ListView.from_items(
        [ListItem(item=f"s{i}", score=9.0 - i, category="dairy") for i in range(6)]
    )
    popular = ListView.from_items([ListItem(item="soap", score=5.0, category="home")])
    feats = Features(bought=bought, baskets=10, affinity={"dairy": 3.0})
    return Inputs(
        feats,
        NOW,
        covis={"jam": 1.0},
        covis_source={"jam": "rolls"},
        segment=segment,
        popular=popular,
        catalog=catalog,
    )


def _rail(items: list[tuple[str, float, str]]) -> None:
    doc = {"v": 1, "items": [{"item": i, "score": s, "reason": r} for i, s, r in items]}
    parsed = parse_rail(doc)
    assert [it.reason for it in parsed.items] == [r for _, _, r in items]


def test_the_origins_reasons_parse_as_a_rail() -> None:
    inp = _inputs()
    home = rank(inp, Strategy(), k=20, category_cap=20)
    again = buy_again(inp, k=20, category_cap=20)
    reasons = {s.reason for s in home + again}
    assert any(r.startswith("due again") for r in reasons)  # the sentences this is about
    assert any(r.startswith("viewed or bought together") for r in reasons)
    _rail([(s.item, s.score, s.reason) for s in home + again])


def test_a_merchandising_rules_reason_parses_as_a_rail() -> None:
    rule = MerchRule(name="spring-sale", kind="pin", skus=("milk",), position=1)
    rows = apply_rules([Row("tea", 1.0, "segment", "drinks")], [rule], k=2, excluded=frozenset())
    assert rows[0].reason == "pinned by merchandising rule spring-sale"
    _rail([(r.item, r.score, r.reason) for r in rows])


@pytest.mark.parametrize("bad", ["", "line\nbreak", "tab\there", "x" * 200, "nul\x00"])
def test_a_reason_is_still_bounded_text(bad: str) -> None:
    with pytest.raises(WireError, match=r"items\[0\]\.reason"):
        parse_rail({"v": 1, "items": [{"item": "SKU-1", "reason": bad}]})
