"""Merchandising rules (``cache_keys.wire.merch``): properties the vectors do not spell out."""

from __future__ import annotations

import random

import pytest

from cache_keys.errors import WireError
from cache_keys.wire import (
    EdgeConfig,
    MerchRule,
    Row,
    apply_rules,
    edge_config_to_json,
    parse_edge_config,
)

ROWS = [Row(f"SKU-{i}", float(30 - i), "segment", f"cat-{i % 4}") for i in range(30)]


def _random_rule(rng: random.Random, n: int) -> MerchRule:
    kind = rng.choice(["pin", "boost", "bury", "block"])
    by_sku = rng.random() < 0.7
    return MerchRule(
        name=f"r{n}",
        kind=kind,
        skus=tuple(f"SKU-{rng.randrange(40)}" for _ in range(rng.randint(1, 3))) if by_sku else (),
        category="" if by_sku else f"cat-{rng.randrange(5)}",
        position=rng.randint(1, 15),
        factor={"boost": 5.0, "bury": 0.2}.get(kind, 1.0),
    )


@pytest.mark.parametrize("seed", range(200))
def test_any_rules_keep_the_answer_well_formed(seed: int) -> None:
    rng = random.Random(seed)
    rules = [_random_rule(rng, n) for n in range(rng.randint(1, 5))]
    excluded = frozenset(f"SKU-{rng.randrange(40)}" for _ in range(3))
    k = rng.randint(1, 20)
    out = apply_rules(ROWS, rules, k=k, excluded=excluded)
    names = [r.item for r in out]
    assert len(out) <= k
    assert len(names) == len(set(names))  # never an item twice
    blocks = [r for r in rules if r.kind == "block"]
    for row in out:
        assert not any(b.targets(row.item, row.category) for b in blocks)
        if row.reason.startswith("pinned"):
            assert row.item not in excluded
    # every listed item that no rule touches keeps its relative order
    untouched = [r.item for r in out if r.reason == "segment"]
    assert untouched == sorted(untouched, key=lambda s: int(s.split("-")[1]))


def test_a_pin_lands_exactly_at_its_position() -> None:
    pin = MerchRule("deal", "pin", skus=("SKU-20",), position=3)
    out = apply_rules(ROWS, [pin], k=5, excluded=frozenset())
    assert [r.item for r in out] == ["SKU-0", "SKU-1", "SKU-20", "SKU-2", "SKU-3"]
    assert out[2].reason == "pinned by merchandising rule deal"


def test_rules_survive_the_edge_config_round_trip() -> None:
    rule = MerchRule("recall", "block", category="dairy", routes=("home",), start_ms=5)
    cfg = EdgeConfig(etag="e", generated_at_ms=1, rules=(rule,))
    doc = edge_config_to_json(cfg)
    assert doc["rules"][0]["kind"] == "block"
    assert parse_edge_config(doc).rules == (rule,)
    assert "rules" not in edge_config_to_json(EdgeConfig(etag="e", generated_at_ms=1))


def test_a_bad_rule_in_the_config_names_its_field() -> None:
    doc = edge_config_to_json(EdgeConfig(etag="e", generated_at_ms=1))
    doc["rules"] = [{"name": "x", "kind": "pin", "skus": ["A"], "factor": "big"}]
    with pytest.raises(WireError) as err:
        parse_edge_config(doc)
    assert err.value.field == "rules[0].factor"
