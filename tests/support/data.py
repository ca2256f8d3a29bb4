"""Seed data: tokens for every role, keys, shoppers, and writers that put catalog, lists and
shopper state straight into Redis in the formats of ``segmenter/schema.py``.

The segmenter writes these in production; the tests write them directly so they do not
depend on the processor. ``seed_shop`` is the small shop the real-process tests serve (three
segments with a list each, their catalog, the popular list); ``shopper_cookie`` signs a
shopper into one of its segments.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import msgpack
import orjson
import redis

from cache_keys import KeyRing, SigningKey, hash_segment, sign_segment
from cache_keys.wire import ListItem, SegmentList, segment_list_to_json
from segmenter.schema import Keys

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"  # the contracts' JSON vectors
KEYS = Keys("p13n")
SEGMENT_KEY = b"test-segment-key-0123456789abcdef"
NOW_MS = 1_764_000_000_000
ADMIN = "admin-token-0123456789"
MERCH = "merch-token-0123456789"
EXPER = "exper-token-0123456789"
SERVICE = "service-token-0123456789"
TOKENS = {ADMIN: "admin", MERCH: "merchandiser", EXPER: "experimenter", SERVICE: "service"}
# The signing key of segment and context cookies in the real-process tests (``kid:secret``).
SIGNING = "k1:edge-proxy-test-secret-0123456789"
RING = KeyRing(SigningKey("k1", b"edge-proxy-test-secret-0123456789"))
SEGMENTS = [f"returning|cat{i}|mid" for i in range(3)]
HSEGS = [hash_segment(s, SEGMENT_KEY) for s in SEGMENTS]
CATS = ("dairy", "bakery", "produce", "snacks")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sid(n: int) -> str:
    """A deterministic 22-character shopper id."""
    digest = hashlib.sha256(f"shopper-{n}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def hseg(name: str) -> str:
    return hash_segment(name, SEGMENT_KEY)


def put_catalog(r: redis.Redis, items: Mapping[str, tuple[str, float, int, bool]]) -> None:
    """sku -> (category, price, stock, durable)."""
    r.hset(
        KEYS.catalog,
        mapping={
            sku: orjson.dumps(
                {"category": c, "price": p, "stock": s, "durable": d, "updated_ms": NOW_MS}
            )
            for sku, (c, p, s, d) in items.items()
        },
    )


def put_shopper(
    r: redis.Redis,
    shopper: str,
    *,
    segment_hseg: str = "",
    recent: Iterable[str] = (),
    cart: Mapping[str, int] | None = None,
    bought: Mapping[str, tuple[int, ...]] | None = None,
    affinity: Mapping[str, float] | None = None,
) -> None:
    p = r.pipeline()
    p.hset(KEYS.shopper(shopper), mapping={"hseg": segment_hseg, "seg": "s", "events": 1})
    recent = list(recent)
    if recent:
        p.rpush(KEYS.recent(shopper), *recent)  # newest first, as LPUSH leaves them
    if cart:
        p.hset(KEYS.cart(shopper), mapping=dict(cart))
    if bought:
        p.hset(KEYS.bought(shopper), mapping={i: "|".join(map(str, v)) for i, v in bought.items()})
    if affinity:
        p.hset(KEYS.affinity(shopper), mapping={c: f"{s}|{NOW_MS}" for c, s in affinity.items()})
    p.execute()


def items(*specs: tuple[str, float, str]) -> tuple[ListItem, ...]:
    """(sku, score, category) -> list items."""
    return tuple(ListItem(item=s, score=sc, category=c, price=1.0) for s, sc, c in specs)


def put_list(
    r: redis.Redis, segment_hseg: str, variant: str, list_items: tuple[ListItem, ...], etag: str
) -> None:
    sl = SegmentList(segment_hseg, variant, etag, NOW_MS, list_items)
    r.set(KEYS.segment_list(segment_hseg, variant), msgpack.packb(segment_list_to_json(sl)))
    raw = r.hget(KEYS.list_registry, segment_hseg)
    entry = msgpack.unpackb(raw) if raw else {"segment": "s", "lists": {}}
    entry["lists"][variant] = etag
    r.hset(KEYS.list_registry, segment_hseg, msgpack.packb(entry))


def put_popular(r: redis.Redis, list_items: tuple[ListItem, ...]) -> None:
    sl = SegmentList("a" * 16, "control", "pop-1", NOW_MS, list_items)
    r.set(KEYS.popular_list, msgpack.packb(segment_list_to_json(sl)))


def put_covis(
    r: redis.Redis, item: str, neighbours: Mapping[str, float], partition: int = 0
) -> None:
    r.zadd(KEYS.covisitation(partition, item), dict(neighbours))


def shop_list(seg: int, n: int = 40) -> tuple[ListItem, ...]:
    """The list of segment ``seg`` of the seeded shop: ``S<seg>-<i>``, falling scores."""
    return tuple(
        ListItem(
            item=f"S{seg}-{i:03d}",
            score=round(1 - i / 50, 3),
            category=CATS[i % 4],
            price=float(1 + i % 7),
        )
        for i in range(n)
    )


def shop_name(item: str) -> str:
    """The catalog name of the seeded shop's labelled items (every other one has none)."""
    return f"Product {item}" if int(item.rsplit("-", 1)[-1]) % 2 == 0 else ""


def seed_shop(r: redis.Redis) -> None:
    """The seeded shop: a control list per segment of ``HSEGS``, their catalog (every other
    item named, ``shop_name``, and so in the lists, as the segmenter copies them), popular."""
    catalog = {}
    for seg, h in enumerate(HSEGS):
        seg_items = tuple(replace(i, name=shop_name(i.item)) for i in shop_list(seg))
        put_list(r, h, "control", seg_items, f'"list-{seg}-1"')
        catalog.update({i.item: (i.category, i.price, 100, False) for i in seg_items})
    put_catalog(r, catalog)
    for sku in catalog:
        if name := shop_name(sku):
            entry = orjson.loads(r.hget(KEYS.catalog, sku) or b"{}")
            r.hset(KEYS.catalog, sku, orjson.dumps({**entry, "name": name}))
    put_popular(r, shop_list(9, 20))


def shopper_cookie(shopper: str, seg: int, now_s: float) -> str:
    """The Cookie header of ``shopper`` signed into segment ``seg`` of the seeded shop."""
    token = sign_segment(HSEGS[seg], int(now_s) + 86400, RING)
    return f"p13n_sid={shopper}; p13n_seg={token}"
