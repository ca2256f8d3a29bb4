"""GrowthBook-compatible A/B bucketing (hashing spec 0.8, hash versions 1 and 2).

Same answers as GrowthBook's SDKs, so an experiment assigns a shopper here exactly as it
would in any GrowthBook client:

    >>> hash("seed", "a", 2)
    0.0505
    >>> get_bucket_ranges(2, 0.5, None)
    [(0.0, 0.25), (0.5, 0.75)]
    >>> choose_variation(0.6, [(0.0, 0.5), (0.5, 1.0)])
    1

Strings are hashed over UTF-16 code units, as JavaScript's ``charCodeAt`` gives them, so an
astral character counts as two units (GrowthBook's JS SDK is the reference).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = [
    "Namespace",
    "SeedLanes",
    "choose_variation",
    "fnv1a32",
    "fnv_continue",
    "get_bucket_ranges",
    "get_equal_weights",
    "hash",
    "in_namespace",
    "v2_of_state",
]

Namespace = tuple[str, float, float]
BucketRange = tuple[float, float]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF


def _units(text: str) -> Sequence[int]:
    if text.isascii():
        return text.encode("ascii")
    raw = text.encode("utf-16-le", "surrogatepass")
    return [raw[i] | (raw[i + 1] << 8) for i in range(0, len(raw), 2)]


def fnv_continue(
    h: int, text: str, prime: int = _FNV_PRIME, mask: int = _MASK32
) -> int:  # constants as defaults: local lookups in the hot loop
    """FNV-1a 32-bit of ``text`` continued from the state ``h``."""
    for unit in _units(text):
        h = ((h ^ unit) * prime) & mask
    return h


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit over the UTF-16 code units of ``text``."""
    return fnv_continue(_FNV_OFFSET, text)


# FNV state after hashing a seed, so hashing seed + value only walks the value. Seeds are
# experiment seeds (tens, not millions); the dict is cleared if it ever grows past the cap.
_SEED_STATES: dict[str, int] = {}
_SEED_STATES_MAX = 4096


def _seed_state(seed: str) -> int:
    state = _SEED_STATES.get(seed)
    if state is None:
        if len(_SEED_STATES) >= _SEED_STATES_MAX:
            _SEED_STATES.clear()
        state = _SEED_STATES[seed] = fnv1a32(seed)
    return state


def _fnv_bytes(h: int, raw: bytes) -> int:
    """FNV-1a 32-bit of ``raw`` from the state ``h``.

    Literal constants (LOAD_CONST is the cheapest operand) and one statement per byte: this
    loop is nearly all of an assignment's cost. (Unrolling it four bytes per step with one
    mask per step measured no faster in CPython 3.11.)
    """
    for unit in raw:
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    return h


def hash(
    seed: str, value: str, version: int
) -> float | None:  # shadows the builtin: GrowthBook's name
    """Hash ``value`` with ``seed`` to a float in [0, 1); None for an unknown version."""
    if version == 2:
        h = _SEED_STATES.get(seed)
        if h is None:
            h = _seed_state(seed)
        ascii_value = value.isascii()
        h = _fnv_bytes(h, value.encode("ascii")) if ascii_value else fnv_continue(h, value)
        return (_fnv_bytes(0x811C9DC5, str(h).encode("ascii")) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def v2_of_state(inner: int) -> float:
    """A version 2 hash from the FNV state after ``seed + value`` (see ``SeedLanes``)."""
    return (_fnv_bytes(0x811C9DC5, str(inner).encode("ascii")) % 10000) / 10000


class SeedLanes:
    """The FNV-1a states of ``seed + value`` for several seeds, walking ``value`` once.

    Each seed's 32-bit state sits in a 64-bit lane of one Python int: XOR with the byte
    repeated in every lane, times the prime, masked to 32 bits per lane, is one FNV-1a step
    in every lane at once (a lane's product stays below 2**57, so no carry reaches the next
    lane). ``""`` as a seed gives the plain FNV-1a state of ``value``.

        >>> SeedLanes(["a", "b"]).states("x") == (fnv1a32("ax"), fnv1a32("bx"))
        True
    """

    __slots__ = ("_bytes", "_mask", "_seed_states", "_start", "_unpack", "_xor")

    def __init__(self, seeds: Sequence[str]) -> None:
        self._seed_states = tuple(fnv1a32(seed) for seed in seeds)
        self._start = sum(h << (64 * i) for i, h in enumerate(self._seed_states))
        ones = sum(1 << (64 * i) for i in range(len(seeds)))
        self._mask = ones * _MASK32
        self._xor = tuple(unit * ones for unit in range(128))
        self._bytes = 8 * len(seeds)
        self._unpack = struct.Struct(f"<{len(seeds)}Q").unpack

    def states(self, value: str) -> tuple[int, ...]:
        """Per seed, the FNV-1a state after ``seed + value``."""
        if not value.isascii():
            return tuple(fnv_continue(h, value) for h in self._seed_states)
        h, xor, mask = self._start, self._xor, self._mask
        for unit in value.encode("ascii"):
            h = ((h ^ xor[unit]) * 0x01000193) & mask
        lanes: tuple[int, ...] = self._unpack(h.to_bytes(self._bytes, "little"))
        return lanes


def get_equal_weights(num_variations: int) -> list[float]:
    """Equal weights for ``num_variations`` variations; empty for n < 1."""
    if num_variations < 1:
        return []
    return [1.0 / num_variations] * num_variations


_RANGES: dict[tuple[int, float, tuple[float, ...] | None], tuple[BucketRange, ...]] = {}
_RANGES_MAX = 4096  # distinct splits (experiments), cleared if ever exceeded


def get_bucket_ranges(
    num_variations: int, coverage: float, weights: Sequence[float] | None
) -> list[BucketRange]:
    """Bucket ranges per variation; coverage shrinks each range from its fixed start.

    Each range starts at the running sum of the weights, so ramping coverage up or down never
    moves a shopper from one variation to another: 2 variations at coverage 0.5 give
    ``[(0, 0.25), (0.5, 0.75)]``. (Memoized by the split: a new list each call.)
    """
    key = (num_variations, coverage, tuple(weights) if weights is not None else None)
    ranges = _RANGES.get(key)
    if ranges is None:
        if len(_RANGES) >= _RANGES_MAX:
            _RANGES.clear()
        ranges = _RANGES[key] = tuple(_bucket_ranges(num_variations, coverage, weights))
    return list(ranges)


def _bucket_ranges(
    num_variations: int, coverage: float, weights: Sequence[float] | None
) -> list[BucketRange]:
    coverage = min(max(coverage, 0.0), 1.0)
    chosen: Sequence[float]
    if not weights or len(weights) != num_variations:
        chosen = get_equal_weights(num_variations)
    else:
        total = sum(weights)
        chosen = weights if 0.99 <= total <= 1.01 else get_equal_weights(num_variations)
    ranges: list[BucketRange] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: Sequence[BucketRange]) -> int:
    """Index of the first half-open range holding ``n``, else -1 (not in the experiment)."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def in_namespace(hash_value: str, namespace: Namespace) -> bool:
    """Whether ``hash_value`` (the shopper id) falls in the namespace's [start, end) slice."""
    name, start, end = namespace
    n = hash("__" + name, hash_value, 1)
    return n is not None and start <= n < end
