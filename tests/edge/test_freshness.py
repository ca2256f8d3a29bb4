"""Freshness: max-age, stale-while-revalidate, stale-if-error, generations, the item mask."""

from __future__ import annotations

import pytest

from cache_keys.wire import RoutePolicy, SegmentList
from edge.entry import decode_entry, encode_entry, entry_tags, make_entry
from edge.freshness import MASK_RECHECK_S, State, freshness
from tests.support.edge import HSEG, NOW_MS, config, items

POLICY = RoutePolicy("home", max_age_s=60, swr_s=300, sie_s=3600, k=5)
SEGLIST = SegmentList(HSEG, "control", '"l"', 0, tuple(items(8)))


def stored(cfg=None):
    cfg = cfg or config()
    tags = entry_tags("home", HSEG, ["rail-algo"], SEGLIST)
    entry = decode_entry(encode_entry(SEGLIST, tags, cfg, NOW_MS))
    assert entry is not None
    return entry


def test_the_entry_made_is_the_entry_its_body_decodes_to() -> None:
    cfg = config(generations={"*": (1, 2), "route:home": (3, 0)})
    tags = entry_tags("home", HSEG, ["rail-algo"], SEGLIST)
    entry, body = make_entry(SEGLIST, tags, cfg, NOW_MS)
    assert decode_entry(body) == entry
    assert entry.gens["*"] == (1, 2) and entry.gens["route:home"] == (3, 0)


@pytest.mark.parametrize(
    ("age_s", "state", "ttl"),
    [
        (0, State.FRESH, 60),
        (60, State.FRESH, 0),
        (61, State.STALE, -1),
        (360, State.STALE, -300),
        (361, State.EXPIRED, -301),
        (3660, State.EXPIRED, -3600),
        (3661, State.DEAD, -3601),
    ],
)
def test_age_windows(age_s: int, state: State, ttl: int) -> None:
    f = freshness(stored(), POLICY, config(), NOW_MS + age_s * 1000)
    assert (f.state, f.age_s, f.ttl_s) == (state, age_s, ttl)


def test_clock_behind_the_stamp_counts_as_age_zero() -> None:
    assert freshness(stored(), POLICY, config(), NOW_MS - 5000).state is State.FRESH


def test_soft_purge_of_any_tag_makes_it_stale_within_swr() -> None:
    for tag in ("*", "route:home", "seg:" + HSEG, "exp:rail-algo", "cat:a", "sku:i-001"):
        cfg = config(generations={tag: [1, 0]})
        f = freshness(stored(), POLICY, cfg, NOW_MS)
        assert (f.state, f.soft_purged, f.hard_purged) == (State.STALE, True, False), tag
        assert freshness(stored(), POLICY, cfg, NOW_MS + 400_000).state is State.EXPIRED


def test_hard_purge_is_unservable_at_once_even_for_stale_if_error() -> None:
    cfg = config(generations={"sku:i-003": [2, 1]})
    f = freshness(stored(), POLICY, cfg, NOW_MS)
    assert (f.state, f.hard_purged) == (State.DEAD, True)


def test_generations_recorded_at_store_time_are_not_purges() -> None:
    cfg = config(generations={"*": [3, 3], "sku:i-003": [2, 1], "sku:unrelated": [9, 9]})
    assert freshness(stored(cfg), POLICY, cfg, NOW_MS).state is State.FRESH


def test_purge_of_a_tag_the_entry_lacks_changes_nothing() -> None:
    cfg = config(generations={"sku:not-in-list": [5, 5], "route:pdp": [1, 1]})
    assert freshness(stored(), POLICY, cfg, NOW_MS).state is State.FRESH


def test_mask_that_starves_the_rail_makes_it_stale() -> None:
    few = config(item_mask=["I-000", "I-001"])  # 6 of 8 left, k = 5
    assert freshness(stored(), POLICY, few, NOW_MS).state is State.FRESH
    many = config(item_mask=["I-000", "I-001", "I-002", "I-003"])  # 4 left
    later = NOW_MS + MASK_RECHECK_S * 1000
    assert freshness(stored(), POLICY, many, later).state is State.STALE
    # A list just (re)fetched that the mask still starves is not refetched at once.
    assert freshness(stored(), POLICY, many, NOW_MS).state is State.FRESH


def test_short_list_without_mask_stays_fresh() -> None:
    policy = RoutePolicy("home", k=50)
    assert freshness(stored(), policy, config(), NOW_MS).state is State.FRESH
