"""The pure recommendation core: candidates, filters, scores, diversity, buy-again."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cache_keys.wire import ListItem
from origin.catalog_records import CatalogEntry
from origin.recommend.caches import MISSING, Expiring, ListView
from origin.recommend.explore import FRESH_TAKE, ShopItems
from origin.recommend.features import Features, decode_affinity, decode_bought
from origin.recommend.ranking import (
    DEFAULT_REPEAT_SHARE,
    Inputs,
    Scored,
    Strategy,
    buy_again,
    diversify,
    rank,
    repeat_odds,
    shop_repeat_share,
)
from origin.recommend.repurchase import due_scores
from segmenter.recency import pif_max
from segmenter.schema import PIF_DECAY_PER_BASKET

NOW = 1_764_000_000_000
DAY = 86_400_000


def li(item: str, score: float, cat: str = "", *, stock: bool = True, durable: bool = False):
    return ListItem(item=item, score=score, category=cat, in_stock=stock, durable=durable)


def test_cap_per_category_never_shortens_the_answer() -> None:
    ranked = [Scored(f"a{i}", 10 - i, "segment", "dairy") for i in range(6)]
    ranked += [Scored("b0", 1.0, "segment", "bakery")]
    out = diversify(ranked, k=5, cap=2)
    assert [s.item for s in out] == ["a0", "a1", "b0", "a2", "a3"]  # filled after the cap
    assert len(out) == 5


def test_unknown_categories_share_one_cap_bucket_but_are_not_dropped() -> None:
    ranked = [Scored(f"u{i}", 10 - i, "segment", "") for i in range(4)]
    ranked += [Scored("d0", 1.0, "segment", "dairy")]
    out = diversify(ranked, k=3, cap=1)
    assert [s.item for s in out] == ["u0", "d0", "u1"]


def test_filters_cart_stock_mask_and_durable_purchases() -> None:
    feats = Features(
        cart={"incart": 1},
        bought={"kettle": (1, NOW - DAY, NOW - DAY, 1), "milk": (5, NOW - DAY, NOW - 9 * DAY, 5)},
    )
    seg = [li("incart", 9), li("oos", 8, stock=False), li("masked", 7), li("kettle", 6),
           li("milk", 5), li("bread", 4)]  # fmt: skip
    catalog = {
        "kettle": CatalogEntry("home", 30.0, 5, durable=True),
        "milk": CatalogEntry("dairy", 1.0, 50, durable=False),
    }
    inp = Inputs(
        feats, NOW, segment=ListView.from_items(seg), catalog=catalog, mask=frozenset({"masked"})
    )
    out = rank(inp, Strategy(), k=10, category_cap=10)
    assert {s.item for s in out} == {"milk", "bread"}  # repurchasable milk stays a candidate


def test_catalog_outranks_list_data_for_stock() -> None:
    inp = Inputs(
        Features(),
        NOW,
        segment=ListView.from_items([li("x", 1.0, "c")]),
        catalog={"x": CatalogEntry("c", 1.0, 0, durable=False)},
    )
    assert rank(inp, Strategy(), 5, 3) == []


def test_reasons_name_the_strongest_signal_truthfully() -> None:
    feats = Features(
        recent=("seen",),
        bought={
            "eggs": (3, NOW - 9 * DAY, NOW - 27 * DAY, 3),
            "jam": (1, NOW - DAY, NOW - DAY, 1),
            "tea": (9, NOW - 2 * DAY, NOW - 60 * DAY, 9),
        },
        affinity={"dairy": 1.0},
        # tea in most baskets, bought two days ago; eggs due: their interval is up
        baskets=12,
    )
    inp = Inputs(
        feats,
        NOW,
        covis={"together": 5.0},
        covis_source={"together": "seen"},
        segment=ListView.from_items([li("segtop", 10.0, "bakery")]),
        popular=ListView.from_items([li("pop", 3.0, "toys")]),
        catalog={
            "eggs": CatalogEntry("dairy", 2.0, 9, durable=False),
            "jam": CatalogEntry("pantry", 2.0, 9, durable=False),
            "tea": CatalogEntry("drinks", 2.0, 9, durable=False),
        },
    )
    reasons = {s.item: s.reason for s in rank(inp, Strategy(), 10, 10)}
    assert reasons == {
        "together": "viewed or bought together with seen",
        "segtop": "popular in your segment",
        "pop": "popular",
        "eggs": "due again: you buy this every ~9 days",  # 3 purchases over 18 days
        "jam": "buy again",  # bought once: no interval of its own to quote
        "tea": "you buy this often",
    }


def test_strategy_weights_change_the_order() -> None:
    inp = Inputs(
        Features(),
        NOW,
        covis={"c": 1.0},
        segment=ListView.from_items([li("s", 1.0, "x")]),
    )
    seg_first = rank(inp, Strategy(base=1.0, recency=0.5), 2, 2)
    covis_first = rank(
        inp, Strategy.from_weights({"base": 0.1, "recency": 2.0, "edge-only": 1}), 2, 2
    )
    assert [s.item for s in seg_first] == ["s", "c"]
    assert [s.item for s in covis_first] == ["c", "s"]


def test_buy_again_puts_what_is_due_first() -> None:
    feats = Features(
        bought={
            "milk": (8, NOW - 7 * DAY, NOW - 56 * DAY, 8),  # every 7 days, due now
            "eggs": (8, NOW - DAY, NOW - 50 * DAY, 8),  # every 7 days, bought yesterday
            "flour": (1, NOW - 20 * DAY, NOW - 20 * DAY, 1),  # once
            "bread": (6, NOW - 90 * DAY, NOW - 125 * DAY, 6),  # weekly, then stopped
            "kettle": (1, NOW, NOW, 1),
        },
        baskets=20,
    )
    catalog = {
        "kettle": CatalogEntry("home", 30.0, 5, durable=True),
        "milk": CatalogEntry("dairy", 1.0, 5, durable=False),
    }
    out = buy_again(Inputs(feats, NOW, catalog=catalog), k=10, category_cap=10)
    score = {s.item: s.score for s in out}
    reasons = {s.item: s.reason for s in out}
    assert out[0].item == "milk" and reasons["milk"] == "due again: you buy this every ~7 days"
    assert "kettle" not in score  # durable
    # Equally frequent (in 8 of 20 baskets), but timing tells them apart: the same habit
    # bought yesterday, one that stopped two months ago.
    assert score["eggs"] < score["milk"] / 2 and reasons["eggs"] == "you buy this often"
    assert score["bread"] < score["milk"] / 2
    assert reasons["flour"] == "buy again"


def test_a_staple_just_bought_gives_way_to_a_rarer_item_that_is_due() -> None:
    # tea in 12 of 20 baskets but bought yesterday; jam in 5, its ~14-day interval is up.
    feats = Features(
        bought={
            "tea": (12, NOW - DAY, NOW - 67 * DAY, 12),
            "jam": (5, NOW - 15 * DAY, NOW - 71 * DAY, 5),
        },
        baskets=20,
    )
    out = buy_again(Inputs(feats, NOW), k=10, category_cap=10)
    assert [s.item for s in out] == ["jam", "tea"]


def test_buy_again_breaks_ties_by_popularity_then_the_most_recent_purchase() -> None:
    ago = {"a": 3, "b": 1, "c": 2}  # days since each was bought, once
    bought = {i: (1, NOW - d * DAY, NOW - d * DAY, 1) for i, d in ago.items()}
    out = buy_again(Inputs(Features(bought=bought, baskets=5), NOW), k=10, category_cap=10)
    assert [s.item for s in out] == ["b", "c", "a"]
    # what many shoppers buy comes before what few do, recency only after that
    popular = ListView.from_items([li("a", 9.0), li("c", 3.0)])
    inp = Inputs(Features(bought=bought, baskets=5), NOW, popular=popular)
    assert [s.item for s in buy_again(inp, k=10, category_cap=10)] == ["a", "c", "b"]


def test_share_of_baskets_leads_when_timing_says_nothing() -> None:
    # Bought once each (no interval of their own): the repurchase score is the share of the
    # shopper's baskets holding the item, the timing lift exactly 1.
    dues = due_scores(
        {"a": (1, NOW - 3 * DAY, NOW - 3 * DAY, 1), "b": (2, NOW - 3 * DAY, NOW - 3 * DAY, 1)},
        lambda i: "", NOW, baskets=4,
    )  # fmt: skip
    assert dues["a"].lift == 1.0 and dues["a"].score == 0.25
    # the same item in more baskets ranks higher at equal timing
    more = due_scores(
        {"a": (3, NOW - 7 * DAY, NOW - 21 * DAY, 3), "x": (1, NOW - DAY, NOW - DAY, 1)},
        lambda i: "", NOW, baskets=6,
    )  # fmt: skip
    fewer = due_scores(
        {"a": (3, NOW - 7 * DAY, NOW - 21 * DAY, 3), "x": (1, NOW - DAY, NOW - DAY, 1)},
        lambda i: "", NOW, baskets=12,
    )  # fmt: skip
    assert more["a"].score > fewer["a"].score
    assert more["a"].lift == fewer["a"].lift


def test_due_items_are_not_capped_by_category_but_discovery_is() -> None:
    bought = {f"d{i}": (5, NOW - 7 * DAY, NOW - 35 * DAY, 5) for i in range(4)}
    seg = [li(f"s{i}", 10.0 - i, "dairy") for i in range(4)] + [li("b", 1.0, "bakery")]
    catalog = {f"d{i}": CatalogEntry("dairy", 1.0, 5, durable=False) for i in range(4)}
    inp = Inputs(Features(bought=bought), NOW, segment=ListView.from_items(seg), catalog=catalog)
    out = [s.item for s in rank(inp, Strategy(), 7, category_cap=2)]
    assert set(out[:4]) == {"d0", "d1", "d2", "d3"}  # four dairy staples, cap 2
    assert out[4:] == ["s0", "s1", "b"]  # discovery: at most 2 dairy before bakery


def test_route_strategies_and_variation_weights() -> None:
    assert Strategy.from_weights({}, "pdp").recency > Strategy.from_weights({}, "home").recency
    assert Strategy.from_weights({"repeat": 0.0}, "home").repeat == 0.0


def test_feature_decoding_skips_junk_and_decays_affinity() -> None:
    raw = {b"a": b"2|5", b"b": b"x|y", b"c": b"3|9|4|2", b"d": b"1|2|3"}
    assert decode_bought(raw) == {"a": (2, 5, 5, 1), "c": (3, 9, 4, 2)}  # older form: once
    week = 7 * DAY
    aff = decode_affinity(
        {b"new": b"1.0|%d" % NOW, b"old": b"1.0|%d" % (NOW - week), b"bad": b"z"}, NOW
    )
    assert aff["new"] == 1.0 and abs(aff["old"] - 0.5) < 1e-9 and "bad" not in aff


def test_expiring_cache_expires_within_its_jittered_ttl_and_clears_when_full() -> None:
    c: Expiring[str, int] = Expiring(ttl_s=10, maxsize=2, jitter=lambda: 1.0)
    c.put("a", 1, now=100.0)
    assert c.get("a", 107.0) == 1  # lives 75% of the ttl at the most jittered
    assert c.get("a", 107.5) is MISSING
    c.put("b", 2, now=100.0)
    c.put("c", 3, now=100.0)  # full: cleared first
    assert c.get("b", 101.0) is MISSING and c.get("c", 101.0) == 3


def test_buy_again_adds_fresh_picks_from_the_segment_in_the_shoppers_categories() -> None:
    # milk in 9 of 10 baskets and due; rolls once; nine dairy purchases to one bakery
    bought = {
        "milk": (9, NOW - 7 * DAY, NOW - 63 * DAY, 9),
        "rolls": (1, NOW - 30 * DAY, NOW - 30 * DAY, 1),
    }
    catalog = {
        "milk": CatalogEntry("dairy", 1.0, 5, durable=False),
        "rolls": CatalogEntry("bakery", 1.0, 5, durable=False),
    }
    segment = ListView.from_items([
        li("cake", 9.0, "bakery"), li("cream", 6.0, "dairy"), li("yoghurt", 1.0, "dairy"),
        li("milk", 9.0, "dairy"), li("butter", 2.0, "dairy"), li("gone", 9.0, "dairy", stock=False),
        li("kettle", 9.0, "home", durable=True), li("hidden", 9.0, "dairy"),
    ])  # fmt: skip
    popular = ListView.from_items([li("soap", 5.0, "home"), li("cream", 1.0, "dairy")])
    feats = Features(bought=bought, baskets=10, cart={"butter": 1})
    inp = Inputs(feats, NOW, segment=segment, popular=popular, catalog=catalog,
                 mask=frozenset({"hidden"}))  # fmt: skip
    out = buy_again(inp, k=10, category_cap=10)
    # cream: (2 items + 4 x 2 prior) / (10 + 2 baskets) fresh picks a basket x 0.9 of them
    # dairy x 6/18 of the segment's dairy = 0.25, over rolls' 1 in 10 baskets, over cake's
    # 0.83 x 0.1 x 1; soap's category was never bought
    assert [s.item for s in out] == ["milk", "cream", "rolls", "cake", "yoghurt", "soap"]
    assert out[1].score == pytest.approx(0.25) and out[2].score == pytest.approx(0.1)
    reasons = {s.item: s.reason for s in out}
    assert reasons["milk"] == "due again: you buy this every ~7 days"
    assert reasons["rolls"] == "buy again" and reasons["cream"] == "popular in your segment"
    assert reasons["soap"] == "popular"
    # the segment's best seller among the shopper's own items adds its chance to theirs
    alone = buy_again(Inputs(feats, NOW, catalog=catalog), k=10, category_cap=10)
    assert out[0].score > alone[0].score


def test_buy_again_takes_fresh_pick_shares_from_the_shops_purchases_when_known() -> None:
    """Every item the shop sold has a share of its category, not only a list's 200: the
    shopper's own "jam" (bought once, in no list) is a best seller of the shop and passes
    "tea" (bought once, more recently, sold little); "honey", never bought, is a best seller
    of a category the shopper buys; masked "gone" is left out; the segment's list no longer
    gives chances."""
    bought = {"jam": (1, NOW - 9 * DAY, NOW - 9 * DAY, 1),
              "tea": (1, NOW - 2 * DAY, NOW - 2 * DAY, 1)}  # fmt: skip
    shop = ShopItems.of([("jam", 60.0, "pantry"), ("honey", 30.0, "pantry"),
                         ("tea", 10.0, "pantry"), ("gone", 90.0, "pantry"),
                         ("soap", 99.0, "home")])  # fmt: skip
    segment = ListView.from_items([li("cake", 9.0, "pantry")])
    popular = ListView.from_items([li("soap", 5.0, "home")])
    feats = Features(bought=bought, baskets=2)
    catalog = {i: CatalogEntry("pantry", 1.0, 5, durable=False) for i in ("jam", "tea")}
    inp = Inputs(feats, NOW, segment=segment, popular=popular, shop_items=shop,
                 catalog=catalog, mask=frozenset({"gone"}))  # fmt: skip
    out = buy_again(inp, k=10, category_cap=10)
    # (2 items + 4 x 2) / (2 + 2) = 2.5 picks a basket, all pantry (190 purchases in the
    # shop): jam 1/2 + 2.5 x 60/190, tea 1/2 + 2.5 x 10/190, honey 2.5 x 30/190
    assert [s.item for s in out] == ["jam", "tea", "honey", "soap"]
    assert out[0].score == pytest.approx(0.5 + 2.5 * 60 / 190, abs=1e-6)
    assert out[2].score == pytest.approx(2.5 * 30 / 190, abs=1e-6)
    assert out[2].reason == "popular" and out[0].reason == "buy again"
    # without the shop's purchases: the segment's list (cake) and the most recent first
    old = buy_again(replace(inp, shop_items=ShopItems()), k=10, category_cap=10)
    assert [s.item for s in old] == ["cake", "tea", "jam", "soap"]
    # an own item the catalog does not know yet takes its category from the shop's items
    unknown = buy_again(replace(inp, catalog={}), k=10, category_cap=10)
    assert [s.item for s in unknown] == ["jam", "tea", "honey", "soap"]


def test_shop_items_keep_each_categorys_best_sellers_and_shares() -> None:
    rows = [(f"p{i}", float(100 - i), "pantry") for i in range(FRESH_TAKE + 5)]
    shop = ShopItems.of([*rows, ("none", 0.0, "pantry"), ("s", 2.0, "home")])
    assert shop.best["pantry"] == tuple(f"p{i}" for i in range(FRESH_TAKE))
    assert shop.share["s"] == ("home", 1.0) and "none" not in shop.share
    assert sum(v for c, v in shop.share.values() if c == "pantry") == pytest.approx(1.0)
    assert not ShopItems() and shop


def test_expiring_cache_drops_keys_never_asked_for_again() -> None:
    # A segment list's etag changes with every rebuild: the old keys are never read again.
    # 100,000 keys, one per 0.01 s, living 10 s: about 1,000 are live at any time.
    c: Expiring[str, int] = Expiring(ttl_s=10, maxsize=1_000_000, jitter=lambda: 0.0)
    for n in range(100_000):
        c.put(f"etag-{n}", n, now=n / 100)
        assert len(c) <= 2 * 1_000 + Expiring.MIN_SWEEP
    assert c.get("etag-99999", 999.99) == 99_999


def test_the_shops_repeat_share_mixes_due_again_and_goes_with() -> None:
    """A shopper who bought "own" once and viewed what "near" goes with: in a shop where half
    of all purchases are repeats the own item leads; where one in ten is, what goes with it
    leads; the shopper's own repeats move the mixture toward due again."""
    bought = {"own": (1, NOW - 3 * DAY, NOW - 3 * DAY, 1)}
    inp = Inputs(Features(bought=bought, baskets=1), NOW, covis={"near": 1.0},
                 covis_source={"near": "seen"})  # fmt: skip
    home = Strategy()

    def order(share: float, feats: Features = inp.features) -> list[str]:
        ranked = rank(replace(inp, features=feats, repeat_share=share), home, 2, 2)
        return [s.item for s in ranked]

    assert order(0.5) == ["own", "near"]  # today's weights: the measure is not known yet
    assert order(0.1) == ["near", "own"]
    assert rank(replace(inp, repeat_share=0.1), home, 1, 2)[0].reason.endswith("with seen")
    # the same fashion shop, a shopper who bought "own" and "more" ten times each
    ten = {
        "more": (10, NOW - DAY, NOW - 90 * DAY, 10),
        "own": (10, NOW - 3 * DAY, NOW - 90 * DAY, 10),
    }
    habit = Features(bought=ten, baskets=10)
    assert order(0.1, habit)[0] == "own"


def test_repeat_odds_shrink_the_shopper_toward_the_shop() -> None:
    once = {f"i{n}": (1, NOW, NOW, 1) for n in range(30)}  # 30 purchases, no repeat
    assert repeat_odds({}, 0.5) == pytest.approx(1.0)
    assert repeat_odds(once, 0.5) == pytest.approx((1 - 0.25) / 0.25)
    assert repeat_odds({}, 0.0) == pytest.approx(0.98 / 0.02)  # finite: never repeats
    assert shop_repeat_share(0.0, None) == DEFAULT_REPEAT_SHARE
    assert shop_repeat_share(0.0, 0.1) == 0.1
    assert shop_repeat_share(0.3, 0.1) == 0.3  # P13N_REPEAT_SHARE wins


def test_the_shops_recent_weight_moves_the_rate_toward_recent_baskets() -> None:
    """Bought in 4 of 10 baskets, the first four, against 3, the last three: frequency ranks
    the first higher; a shop that learned to follow recent baskets ranks the second higher;
    an item without a decayed frequency keeps its plain rate."""
    bought = {"old": (4, NOW - 30 * DAY, NOW - 60 * DAY, 4),
              "new": (3, NOW - DAY, NOW - 9 * DAY, 3),
              "bare": (2, NOW - 5 * DAY, NOW - 20 * DAY, 2)}  # fmt: skip
    d = PIF_DECAY_PER_BASKET
    pif = {"old": d**6 + d**7 + d**8 + d**9, "new": 1 + d + d**2}
    rates = {w: {i: v.rate for i, v in due_scores(bought, lambda i: "", NOW, baskets=10, pif=pif,
                                                   recent_weight=w).items()}
             for w in (0.0, 1.0)}  # fmt: skip
    assert rates[0.0]["old"] == 0.4 and rates[0.0]["new"] == 0.3
    assert rates[1.0]["new"] > rates[1.0]["old"]
    assert rates[1.0]["new"] == pytest.approx(pif["new"] / pif_max(10))
    assert rates[0.0]["bare"] == rates[1.0]["bare"] == 0.2
    plain = due_scores(bought, lambda i: "", NOW, baskets=10)
    assert {i: v.rate for i, v in plain.items()} == rates[0.0]
