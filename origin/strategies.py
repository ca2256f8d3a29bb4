"""Named ranking strategies: what a variation does, by name.

A strategy is the three knobs a variation may turn, with a line that says what they do:

- ``origin_weights``: the origin's signal weights (``origin.recommend.ranking.Strategy``):
  ``repeat`` (due again), ``recency`` (goes with what you have), ``base``,
  ``category_boost`` and ``popularity`` (discovery), ``price``. Unnamed weights keep the
  route's own (home leads with what is due, product and cart pages with what goes with them);
- ``edge_weights``: the edge rerank's weights (``edge.rerank.DEFAULT_WEIGHTS``), applied to
  the cached segment list by both edges;
- ``list_variant``: which segment list the edge caches. The segmenter builds one list per
  variant a stored experiment names; a variant whose name starts with ``trending`` ranks by
  the most recent popularity buckets (``segmenter.lists.TRENDING_BUCKETS``), every other
  variant ranks like ``control``.

A variation naming a strategy is expanded when the experiment is defined: its wire form
carries the strategy's name and its weights (``cache_keys.wire.Variation``), so a running
experiment keeps what it was started with even if the catalog changes later::

    {"name": "b", "strategy": "goes-with"}
    -> {"name": "b", "strategy": "goes-with", "list_variant": "control",
        "weights": {...edge...}, "origin_weights": {...origin...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cache_keys.wire import EDGE_WEIGHT_NAMES, ORIGIN_WEIGHT_NAMES

__all__ = ["CATALOG", "NamedStrategy", "describe", "expand", "lookup"]


@dataclass(frozen=True, slots=True)
class NamedStrategy:
    """One catalog entry."""

    name: str
    description: str
    origin_weights: Mapping[str, float] = field(default_factory=dict)
    edge_weights: Mapping[str, float] = field(default_factory=dict)
    list_variant: str = "control"

    def to_json(self) -> dict[str, Any]:
        """The API's form of the entry."""
        return {
            "name": self.name,
            "description": self.description,
            "origin_weights": dict(self.origin_weights),
            "edge_weights": dict(self.edge_weights),
            "list_variant": self.list_variant,
        }


def _check(s: NamedStrategy) -> NamedStrategy:
    # A typo here would otherwise surface as an edge refusing the whole config.
    assert set(s.origin_weights) <= ORIGIN_WEIGHT_NAMES, s.name
    assert set(s.edge_weights) <= EDGE_WEIGHT_NAMES, s.name
    return s


CATALOG: Mapping[str, NamedStrategy] = {
    s.name: _check(s)
    for s in (
        NamedStrategy(
            "default",
            "The route's own weights and the control list: what shoppers get today (A/A arm).",
        ),
        NamedStrategy(
            "due-first",
            "Leads with what the shopper is due to buy again; little discovery.",
            origin_weights={"repeat": 2.0, "recency": 0.1, "base": 0.05, "popularity": 0.0},
            edge_weights={"category_boost": 0.5, "recency": 0.2},
        ),
        NamedStrategy(
            "goes-with",
            "Leads with items viewed or bought together with what the shopper has.",
            origin_weights={"recency": 2.0, "repeat": 0.1, "base": 0.1},
            edge_weights={"category_boost": 1.0, "recency": 1.0},
        ),
        NamedStrategy(
            "discovery",
            "Leads with the segment's favourites and popular items; ignores the shopper's own "
            "history.",
            origin_weights={"repeat": 0.0, "recency": 0.0, "base": 1.0, "popularity": 0.5},
            edge_weights={"category_boost": 0.0, "popularity": 0.5},
        ),
        NamedStrategy(
            "trending",
            "Discovery from the trending list (popularity of the last hours), not all-time.",
            origin_weights={"repeat": 0.0, "recency": 0.0, "base": 1.0, "popularity": 0.5},
            edge_weights={"category_boost": 0.0},
            list_variant="trending",
        ),
        NamedStrategy(
            "budget",
            "Prefers cheaper items among the usual candidates.",
            # a price weight adds weight * price / the top price to the score, both tiers
            origin_weights={"price": -0.5},
            edge_weights={"price": -0.5},
        ),
    )
}


def lookup(name: str) -> NamedStrategy | None:
    """The catalog entry called ``name``, if any."""
    return CATALOG.get(name)


def describe() -> list[dict[str, Any]]:
    """Every strategy in the API's form, by name."""
    return [CATALOG[n].to_json() for n in sorted(CATALOG)]


def expand(variation: Mapping[str, Any], strategy: NamedStrategy) -> dict[str, Any]:
    """``variation`` with the strategy's weights and list variant written out."""
    out = {**variation, "strategy": strategy.name, "list_variant": strategy.list_variant}
    out["weights"] = dict(strategy.edge_weights)
    out["origin_weights"] = dict(strategy.origin_weights)
    return out
