"""Properties of the GrowthBook-compatible bucketing beyond the published vectors."""

from __future__ import annotations

import math
import random
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from cache_keys import bucketing

ids = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)


def test_fnv1a32_matches_reference_values() -> None:
    # FNV-1a 32-bit reference values (the offset basis for "", well-known "a").
    assert bucketing.fnv1a32("") == 0x811C9DC5
    assert bucketing.fnv1a32("a") == 0xE40C292C
    assert bucketing.fnv1a32("foobar") == 0xBF9CF968


def test_astral_characters_hash_as_two_utf16_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, as JavaScript's charCodeAt sees it.
    pair = "\ud83d\ude00".encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    h = 0x811C9DC5
    for unit in (0xD83D, 0xDE00):
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    assert bucketing.fnv1a32(pair) == h
    assert bucketing.fnv1a32("é") == ((0x811C9DC5 ^ 0xE9) * 0x01000193) & 0xFFFFFFFF


def test_version_2_is_uniform_over_many_ids() -> None:
    rng = random.Random(7)
    n = 40_000
    buckets = [0] * 10
    for _ in range(n):
        uid = "".join(rng.choices(string.ascii_letters + string.digits, k=22))
        h = bucketing.hash("exp-seed", uid, 2)
        assert h is not None and 0 <= h < 1
        buckets[int(h * 10)] += 1
    expected = n / 10
    chi2 = sum((b - expected) ** 2 / expected for b in buckets)
    assert chi2 < 27.88  # chi-square, 9 degrees of freedom, p = 0.001


@given(uid=ids, seed=ids, version=st.sampled_from([1, 2]))
def test_hash_is_deterministic_and_in_range(uid: str, seed: str, version: int) -> None:
    first = bucketing.hash(seed, uid, version)
    assert first == bucketing.hash(seed, uid, version)
    assert first is not None and 0 <= first < 1


@given(
    uid=ids,
    low=st.floats(min_value=0, max_value=1),
    high=st.floats(min_value=0, max_value=1),
    weights=st.lists(st.integers(1, 10), min_size=2, max_size=5),
)
@settings(max_examples=300)
def test_ramping_coverage_up_never_moves_a_shopper(uid, low, high, weights) -> None:
    low, high = sorted((low, high))
    total = sum(weights)
    w = [x / total for x in weights]
    n = bucketing.hash("ramp", uid, 2)
    before = bucketing.choose_variation(n, bucketing.get_bucket_ranges(len(w), low, w))
    after = bucketing.choose_variation(n, bucketing.get_bucket_ranges(len(w), high, w))
    if before != -1:
        assert after == before


@given(n=st.integers(1, 20))
def test_equal_weights_sum_to_one(n: int) -> None:
    assert math.isclose(sum(bucketing.get_equal_weights(n)), 1.0)


def test_unknown_hash_version_gives_none() -> None:
    assert bucketing.hash("a", "b", 3) is None
