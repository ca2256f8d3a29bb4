"""The byte-bounded response store: variants, eviction, purges."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace

from cache_keys.segments import hash_segment
from cache_keys.wire.config import ListItem, SegmentList, parse_segment_list, segment_list_to_json
from edge.proxy.store import ResponseStore
from tests.support.proxy import resp


def test_vary_selects_variant() -> None:
    store = ResponseStore()
    store.put("GET /a", resp(b"en", "Accept-Language", {"accept-language": "en"}))
    store.put("GET /a", resp(b"de", "Accept-Language", {"accept-language": "de"}))
    assert store.lookup("GET /a", {"accept-language": "de"}).body == b"de"
    assert store.lookup("GET /a", {"accept-language": "en"}).body == b"en"
    assert store.lookup("GET /a", {"accept-language": "fr"}) is None
    assert store.lookup("GET /a", {}) is None


def test_same_selecting_values_replace() -> None:
    store = ResponseStore()
    store.put("k", resp(b"1"))
    store.put("k", resp(b"2"))
    assert [v.body for v in store.variants("k")] == [b"2"]


def test_bounded_by_bytes_with_lru_eviction() -> None:
    store = ResponseStore(max_bytes=3000)
    for i in range(5):
        store.put(f"k{i}", resp(b"x" * 500))
    assert store.bytes_used <= 3000
    assert store.lookup("k0", {}) is None and store.lookup("k4", {}) is not None
    assert not store.put("huge", resp(b"x" * 5000))


def test_drop_tagged_and_invalidate() -> None:
    store = ResponseStore()
    store.put("a", resp(tags=frozenset({"sku:1", "cat:x"})))
    store.put("b", resp(tags=frozenset({"cat:y"})))
    assert store.drop_tagged({"sku:1"}) == 1
    assert store.keys() == ["b"]
    assert store.invalidate("b") and not store.invalidate("b")


def test_a_lookup_makes_an_entry_the_most_recently_used() -> None:
    size = resp(b"x" * 500).size
    store = ResponseStore(max_bytes=4 * size + size // 2)  # room for four
    for i in range(4):
        store.put(f"k{i}", resp(b"x" * 500))
    assert store.lookup("k0", {}) is not None  # k1 is now the least recently used
    store.put("k4", resp(b"x" * 500))
    assert store.lookup("k1", {}) is None and store.lookup("k0", {}) is not None
    assert store.bytes_used == sum(v.size for _, v in store.entries()) == 4 * size


def test_variants_together_larger_than_the_store_keep_the_newest() -> None:
    store = ResponseStore(max_bytes=3000)
    store.put("GET /a", resp(b"e" * 1500, "Accept-Language", {"accept-language": "en"}))
    store.put("GET /a", resp(b"d" * 1500, "Accept-Language", {"accept-language": "de"}))
    assert [v.body[:1] for v in store.variants("GET /a")] == [b"d"]
    assert store.bytes_used <= 3000


def _rail_list(n: int) -> bytes:
    items = tuple(
        ListItem(
            f"sku-{n}-{i}",
            1.0 / (i + 1),
            f"cat{i % 9}",
            9.5 + i,
            name=f"Item {n} {i}",
            image_url=f"https://img.example/{n}/{i}.jpg",
        )
        for i in range(200)
    )
    doc = segment_list_to_json(
        SegmentList(hash_segment(f"s{n}", b"k" * 32), "control", f"e{n}", 1_700_000_000_000, items)
    )
    return json.dumps(doc).encode()


def test_decoded_rail_entries_count_against_the_byte_bound() -> None:
    """Rail entries keep their decoded list beside the body: the store's bound covers both,
    measured (it held about twice its bound when only bodies counted)."""
    bound = 2 * 1024 * 1024
    bodies = [_rail_list(n) for n in range(200)]  # distinct keys: more than the bound holds
    tracemalloc.start()
    try:
        store = ResponseStore(max_bytes=bound)
        for n, body in enumerate(bodies):
            store.put(
                f"/rail/{n}", replace(resp(body), parsed=parse_segment_list(json.loads(body)))
            )
            assert store.bytes_used <= bound
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < len(store) < 200 and store.lookup("/rail/199", {}) is not None
    assert held <= 1.25 * bound
