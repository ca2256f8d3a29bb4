"""Reranking a segment list with the request's light context."""

from __future__ import annotations

import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from cache_keys.wire import ContextCookie, ListItem, SegmentList
from edge.entry import decode_entry, make_entry
from edge.rerank import ListItems, prepare, rerank
from tests.support.edge import HSEG, NOW_MS, config

LIST = [
    ListItem("MILK-1", 0.90, "dairy", 2.0),
    ListItem("TV-2", 0.85, "electronics", 500.0, durable=True),
    ListItem("BREAD-3", 0.80, "bakery", 3.0),
    ListItem("MILK-4", 0.75, "dairy", 2.5),
    ListItem("CHEESE-5", 0.70, "dairy", 6.0),
    ListItem("OOS-6", 0.95, "bakery", 4.0, in_stock=False),
    ListItem("EGGS-7", 0.60, "dairy", 3.5),
    ListItem("APPLE-8", 0.50, "produce", 1.0),
]


def names(ranked):
    return [r.item for r in ranked]


def run(ctx=None, *, k=5, cap=10, weights=None, mask=frozenset()):
    return rerank(LIST, ctx, k=k, category_cap=cap, weights=weights or {}, mask=mask)


def test_no_context_keeps_the_list_order_without_out_of_stock() -> None:
    out = run()
    assert names(out) == ["MILK-1", "TV-2", "BREAD-3", "MILK-4", "CHEESE-5"]
    assert {r.reason for r in out} == {"segment"}
    assert out[0].score == 0.9


def test_cart_items_and_durable_purchases_are_dropped_repurchasable_kept() -> None:
    ctx = ContextCookie(cart=("BREAD-3",), durable_purchases=("TV-2", "MILK-1"))
    assert names(run(ctx)) == ["MILK-1", "MILK-4", "CHEESE-5", "EGGS-7", "APPLE-8"]


def test_masked_items_are_dropped() -> None:
    assert "MILK-1" not in names(run(mask=frozenset({"MILK-1"})))


def test_recent_categories_are_boosted_newest_most() -> None:
    ctx = ContextCookie(categories=("produce", "bakery"))
    out = run(ctx, k=3)
    assert names(out) == ["BREAD-3", "MILK-1", "TV-2"]
    assert out[0].reason == "recent-category"
    apple = next(r for r in run(ctx, k=8) if r.item == "APPLE-8")
    assert apple.score == 0.75  # 0.50 + 0.25 / (1 + 0.5 * 0)
    bread = out[0]
    assert bread.score == round(0.80 + 0.25 / 1.5, 6)


def test_category_cap_in_the_top_k() -> None:
    out = run(k=5, cap=1)
    assert names(out) == ["MILK-1", "TV-2", "BREAD-3", "APPLE-8"]


def test_variant_weights_change_the_order() -> None:
    cheap_first = run(weights={"base": 0.0, "price": -1.0}, k=3)
    assert names(cheap_first) == ["APPLE-8", "MILK-1", "MILK-4"]
    boosted = run(ContextCookie(categories=("produce",)), weights={"category_boost": 10.0}, k=1)
    assert names(boosted) == ["APPLE-8"]


def test_k_bounds_the_answer() -> None:
    assert len(run(k=2)) == 2
    assert len(run(k=100)) == 7


category = st.sampled_from(["", "a", "b", "c", "d"])
list_item = st.builds(
    ListItem,
    item=st.from_regex(r"I-[0-9]{1,3}", fullmatch=True),
    score=st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 2)),
    category=category,
    price=st.floats(0, 100).map(lambda x: round(x, 2)),
    in_stock=st.booleans(),
    durable=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(list_item, max_size=40, unique_by=lambda i: i.item),
    recent=st.lists(category.filter(bool), max_size=3, unique=True),
    cart=st.lists(st.from_regex(r"I-[0-9]{1,2}", fullmatch=True), max_size=4),
    bought=st.lists(st.from_regex(r"I-[0-9]{1,2}", fullmatch=True), max_size=4),
    mask=st.frozensets(st.from_regex(r"I-[0-9]", fullmatch=True), max_size=3),
    k=st.integers(1, 15),
    cap=st.integers(1, 4),
    boost=st.sampled_from([0.0, 0.25, 3.0]),
    base=st.sampled_from([0.0, 1.0, 2.0]),
)
def test_fast_path_matches_scoring_every_item(
    items, recent, cart, bought, mask, k, cap, boost, base
) -> None:
    ctx = ContextCookie(tuple(recent), tuple(cart), tuple(bought))
    items = tuple(items)
    weights = {"category_boost": boost, "base": base}
    kwargs = {"k": k, "category_cap": cap, "weights": weights, "mask": mask}
    fast = rerank(items, ctx, **kwargs)
    slow = rerank(items, ctx, exhaustive=True, **kwargs)
    assert fast == slow


def test_a_stored_entrys_index_lives_on_its_items_not_in_a_process_memo() -> None:
    """The rerank index of a stored entry's list goes when the entry goes: nothing but the
    entry's own items refers to it (a process-wide memo kept 256 lists and their indexes
    alive after their entries were gone)."""
    sl = SegmentList(HSEG, "control", '"l"', NOW_MS, tuple(LIST))
    for entry in (
        make_entry(sl, ["route:home"], config(), NOW_MS)[0],
        decode_entry(make_entry(sl, ["route:home"], config(), NOW_MS)[1]),
    ):
        assert entry is not None
        items = entry.seglist.items
        assert isinstance(items, ListItems) and items == sl.items
        prep = prepare(items)
        assert prepare(items) is prep
        rerank(items, None, k=3, category_cap=2, weights={}, mask=frozenset({"x"}))
        gc.collect()
        assert gc.get_referrers(prep) == [vars(items)]
