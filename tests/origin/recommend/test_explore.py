"""The chance of a fresh pick: picks per basket and the shopper's category mix."""

from __future__ import annotations

import doctest

import pytest

from origin.recommend import explore
from origin.recommend.explore import (
    PRIOR_MIX_PURCHASES,
    PRIOR_PICKS,
    category_mix,
    picks_per_basket,
)


def test_module_examples_hold() -> None:
    failed, tried = doctest.testmod(explore)
    assert tried > 0 and failed == 0


def test_picks_per_basket_counts_new_items_after_the_first_basket() -> None:
    """Every item of a first basket is new: counting it would say a shopper with one basket
    of 10 picks 10 new items a basket."""
    assert picks_per_basket(0, 0, 0) == PRIOR_PICKS  # nothing bought: the prior
    assert picks_per_basket(10, 1, 10) == PRIOR_PICKS  # one basket says nothing yet
    # five baskets of 10, 30 distinct items: 20 new in the 4 baskets after the first
    assert picks_per_basket(30, 5, 50) == pytest.approx((20 + 2 * PRIOR_PICKS) / (4 + 2))
    # a shopper who buys the same 10 items every time picks fewer than the prior, then none
    assert picks_per_basket(10, 5, 50) == pytest.approx(2 * PRIOR_PICKS / (4 + 2))
    assert picks_per_basket(10, 50, 500) == pytest.approx(2 * PRIOR_PICKS / (49 + 2))


def test_category_mix_shrinks_a_few_purchases_toward_the_shops_mix() -> None:
    shop = {"dairy": 0.5, "baby": 0.02, "home": 0.48}
    few = category_mix({"baby": 3, "dairy": 1}, shop)
    w = PRIOR_MIX_PURCHASES
    assert few == pytest.approx(
        {"baby": (3 + w * 0.02) / (4 + w), "dairy": (1 + w * 0.5) / (4 + w)}
    )
    assert few["dairy"] > few["baby"]  # four purchases do not yet outweigh the shop
    many = category_mix({"baby": 300, "dairy": 100}, shop)
    assert many["baby"] == pytest.approx(0.75, abs=0.02)  # many do
    # no shop mix yet (before the first list build): the shopper's own shares
    assert category_mix({"baby": 3, "dairy": 1}, {}) == {"baby": 0.75, "dairy": 0.25}
    assert category_mix({}, shop) == {} and category_mix({"baby": 0}, shop) == {}
