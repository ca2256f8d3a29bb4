"""The byte-bounded response store: variants, eviction, purges."""

from __future__ import annotations

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
