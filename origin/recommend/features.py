"""A shopper's features as the segmenter stores them, decoded (formats: ``segmenter/schema.py``).

>>> decode_bought({b"milk-1": b"3|1764000000000|1763000000000|2|1.9|4"})
{'milk-1': (3, 1764000000000, 1763000000000, 2)}
>>> decode_pif({b"milk-1": b"3|1764000000000|1763000000000|2|1.9|4"}, baskets=5)
{'milk-1': 1.71}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cache_keys import ANON_HSEG, is_hseg, is_shopper_id
from segmenter.schema import PIF_DECAY_PER_BASKET

__all__ = [
    "AFFINITY_HALF_LIFE_S",
    "RECENT_USED",
    "Features",
    "decode_affinity",
    "decode_bought",
    "decode_features",
    "decode_pif",
]

# Category affinity decays with this half-life from its as-of time. Ranking only compares
# categories of one shopper, so the value matters only between categories last touched at
# different times; a week matches the weekly rhythm of grocery shopping.
AFFINITY_HALF_LIFE_S = 7 * 86400
# Recently viewed items read per request (the co-visitation sources); newest first. Three
# keep the second round trip small (one ZREVRANGE per source and partition on a cache miss).
RECENT_USED = 3


@dataclass(frozen=True, slots=True)
class Features:
    """What the origin knows about one shopper at request time."""

    hseg: str = ANON_HSEG
    known: bool = False
    recent: tuple[str, ...] = ()
    cart: dict[str, int] = field(default_factory=dict)
    # item -> (quantity, last purchase ms, first purchase ms, purchases)
    bought: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    affinity: dict[str, float] = field(default_factory=dict)
    # item -> basket-decayed purchase frequency at the shopper's latest basket
    pif: dict[str, float] = field(default_factory=dict)
    baskets: int = 0  # purchase baskets so far (the repurchase model's denominator)
    # A customer's A/B unit: the anonymous id they last signed in from ("" if none).
    ab: str = ""


def _split2(value: bytes) -> tuple[str, str]:
    a, _, b = value.decode().partition("|")
    return a, b


def decode_bought(raw: dict[bytes, bytes]) -> dict[str, tuple[int, int, int, int]]:
    """``item -> "count|last_ms|first_ms|purchases"`` (or the older ``"count|last_ms"``, read
    as bought once); malformed entries are skipped."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for item, value in raw.items():
        parts = value.decode().split("|")
        if not all(p.isdigit() for p in parts[:4]):  # the fifth, a float, is decode_pif's
            continue
        if len(parts) == 2:
            out[item.decode()] = (int(parts[0]), int(parts[1]), int(parts[1]), 1)
        elif len(parts) in (4, 6):
            count, last, first, times = (int(p) for p in parts[:4])
            out[item.decode()] = (count, last, first, times)
    return out


def decode_pif(raw: dict[bytes, bytes], baskets: int) -> dict[str, float]:
    """Each item's basket-decayed frequency, decayed on to basket number ``baskets`` (values
    stored before it was kept count their purchases undecayed)."""
    out: dict[str, float] = {}
    for item, value in raw.items():
        parts = value.decode().split("|")
        try:
            if len(parts) == 6:
                pif, at = float(parts[4]), int(parts[5])
                score = pif * PIF_DECAY_PER_BASKET ** max(0, baskets - at)
            else:
                score = float(parts[3]) if len(parts) == 4 else 1.0
        except ValueError:
            continue
        if score > 0 and math.isfinite(score):
            out[item.decode()] = round(score, 12)
    return out


def decode_affinity(raw: dict[bytes, bytes], now_ms: int) -> dict[str, float]:
    """``category -> "score|as_of_ms"``, decayed to ``now_ms``."""
    out: dict[str, float] = {}
    for cat, value in raw.items():
        score, as_of = _split2(value)
        try:
            s, t = float(score), int(as_of)
        except ValueError:
            continue
        age_s = max(0.0, (now_ms - t) / 1000)
        decayed = s * math.exp(-math.log(2) * age_s / AFFINITY_HALF_LIFE_S)
        if decayed > 0 and math.isfinite(decayed):
            out[cat.decode()] = decayed
    return out


def _cart(raw: dict[bytes, bytes]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item, qty in raw.items():
        q = qty.decode()
        if q.lstrip("-").isdigit() and int(q) > 0:
            out[item.decode()] = int(q)
    return out


def _int(raw: bytes) -> int:
    text = raw.decode()
    return int(text) if text.isdigit() else 0


def decode_features(
    f: dict[bytes, bytes],
    recent: list[bytes],
    cart: dict[bytes, bytes],
    bought: dict[bytes, bytes],
    aff: dict[bytes, bytes],
    *,
    now_ms: int,
) -> Features:
    """Features from the replies of the first round trip."""
    raw_hseg = f.get(b"hseg", b"").decode()
    return Features(
        hseg=raw_hseg if is_hseg(raw_hseg) else ANON_HSEG,
        known=bool(f or recent or cart or bought or aff),
        recent=tuple(dict.fromkeys(r.decode() for r in recent)),
        cart=_cart(cart),
        bought=decode_bought(bought),
        affinity=decode_affinity(aff, now_ms),
        pif=decode_pif(bought, _int(f.get(b"baskets", b"0"))),
        baskets=_int(f.get(b"baskets", b"0")),
        ab=ab if is_shopper_id(ab := f.get(b"ab", b"").decode()) else "",
    )
