"""The in-memory snapshot of shared state each worker serves from, refreshed in the background.

One pipelined round trip loads running experiments, the segment registry, generations, the
item mask and the popular list; the shop's purchases per item (``Keys.item_stats``, large)
only when the list build published new ones (their etag in the shop's stats changed).
Recommendations read the snapshot without waiting on Redis; the popular list of the last
good load is what degraded answers are made of. The edge config
is built from the snapshot (``edge_config``), so what an edge sees and what the origin
assigns come from the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack
import orjson

from cache_keys import hash_segment
from cache_keys.wire import (
    EdgeConfig,
    Experiment,
    ListItem,
    MerchRule,
    RoutePolicy,
    SegmentEntry,
    SegmentList,
    edge_config_to_json,
    parse_rules,
    parse_segment_list,
)
from cache_keys.wire.config import MAX_MASK
from origin.assignment import parse_experiment
from origin.recommend.caches import POPULAR_TAKE, ListView
from origin.recommend.explore import ShopItems
from origin.store import Store, StoreUnavailable
from segmenter.schema import Keys

__all__ = [
    "DEFAULT_ROUTES",
    "Snapshot",
    "SnapshotHolder",
    "edge_config",
    "parse_gens",
    "wire_rule",
]

LOG = logging.getLogger("p13n.origin.snapshot")
# Route policies the edges apply. Personal routes are answered per shopper by the origin
# (the edge never caches them); the others are cached per segment.
DEFAULT_ROUTES: dict[str, RoutePolicy] = {
    "home": RoutePolicy("home", k=12, category_cap=3),
    "pdp": RoutePolicy("pdp", k=8, category_cap=4),
    "cart": RoutePolicy("cart", k=8, category_cap=3),
    "buy-again": RoutePolicy("buy-again", personal=True, k=12, category_cap=12),
}
DEFAULT_ITEMS = 24


def parse_gens(raw: dict[bytes, bytes]) -> dict[str, tuple[int, int]]:
    """``{b"sku:a": b"3,1"}`` -> ``{"sku:a": (3, 1)}``; malformed entries are skipped."""
    out: dict[str, tuple[int, int]] = {}
    for tag, value in raw.items():
        soft, _, hard = value.decode().partition(",")
        if soft.isdigit() and hard.isdigit():
            out[tag.decode()] = (int(soft), int(hard))
    return out


def _registry(raw: dict[bytes, bytes]) -> dict[str, SegmentEntry]:
    out: dict[str, SegmentEntry] = {}
    for hseg, packed in raw.items():
        try:
            doc = msgpack.unpackb(packed)
            lists = {str(k): str(v) for k, v in dict(doc.get("lists", {})).items()}
        except (ValueError, TypeError, AttributeError, msgpack.UnpackException):
            LOG.warning("registry entry of one segment is malformed; skipped")
            continue
        out[hseg.decode()] = SegmentEntry(hseg=hseg.decode(), lists=lists)
    return out


def _running(exp: Experiment, now_ms: int) -> bool:
    # Past its stop_ms a running experiment has ended by schedule: edges drop it. One that
    # has yet to start stays, so that edges start it on time.
    return exp.status == "running" and (exp.stop_ms is None or now_ms < exp.stop_ms)


def _experiments(raw: dict[bytes, bytes], now_ms: int) -> tuple[Experiment, ...]:
    out = []
    for key, doc in raw.items():
        try:
            exp = parse_experiment(orjson.loads(doc))
        except ValueError:
            LOG.warning("stored experiment %s is malformed; skipped", key.decode())
            continue
        if _running(exp, now_ms):
            out.append(exp)
    return tuple(sorted(out, key=lambda e: e.key))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Shared state as of one load."""

    experiments: tuple[Experiment, ...] = ()
    segments: dict[str, SegmentEntry] = field(default_factory=dict)
    generations: dict[str, tuple[int, int]] = field(default_factory=dict)
    mask: frozenset[str] = frozenset()
    popular: SegmentList | None = None
    loaded_at_s: float = 0.0
    popular_view: ListView = field(default_factory=ListView)
    # the global holdout's share: as stored by the admin API, else the setting's
    holdout: float = 0.0
    # ``Keys.config_version`` as read before the generations: an edge that pulled a config
    # of revision >= r holds every generation bump committed before the bump to r.
    revision: int = 0
    # merchandising rules not yet ended, by name, segments hashed (``origin.admin.merch_rules``)
    rules: tuple[MerchRule, ...] = ()
    # the shop's repeat share as the last list build measured it (None: not measured yet)
    repeat_share: float | None = None
    # the shop's purchases per item (``ShopItems``) and the etag they were published under
    shop_items: ShopItems = field(default_factory=ShopItems)
    items_etag: str = ""
    # how much the repurchase rate follows recent baskets, as the last list build learned it
    recent_weight: float = 0.0

    @property
    def loaded(self) -> bool:
        """Whether any load has succeeded."""
        return self.loaded_at_s > 0


def _popular(raw: bytes | None) -> SegmentList | None:
    if raw is None:
        return None
    try:
        return parse_segment_list(msgpack.unpackb(raw))
    except (ValueError, TypeError, msgpack.UnpackException):
        LOG.warning("popular list is malformed; keeping the last good one")
        return None


def wire_rule(doc: dict[str, Any], seg_key: bytes) -> MerchRule:
    """The edge's form of a stored merchandising rule: segment names hashed (raises
    ``WireError``)."""
    hashed = [hash_segment(n, seg_key) for n in doc.get("segments", [])]
    wire = {k: v for k, v in doc.items() if k not in ("reason", "who", "created_ms")}
    return parse_rules([{**wire, "segments": hashed}])[0]


def _rules(raw: dict[bytes, bytes], seg_key: bytes, now_ms: int) -> tuple[MerchRule, ...]:
    out = []
    for name, doc in raw.items():
        try:
            rule = wire_rule(orjson.loads(doc), seg_key)
        except ValueError:  # WireError is one; a rule the API let through is never this
            LOG.warning("stored rule %s is malformed; skipped", name.decode())
            continue
        if rule.end_ms is None or now_ms < rule.end_ms:
            out.append(rule)
    return tuple(sorted(out, key=lambda r: r.name))


async def load(
    store: Store, keys: Keys, now_s: float, holdout_default: float = 0.0, seg_key: bytes = b""
) -> Snapshot:
    """Load a snapshot in one pipelined round trip (raises ``StoreUnavailable``)."""

    def build(p: Any) -> None:
        p.get(keys.config_version)  # first: the generations read after it include its bumps
        p.hgetall(keys.experiments)
        p.hgetall(keys.list_registry)
        p.hgetall(keys.generations)
        p.zrevrange(keys.item_mask, 0, MAX_MASK - 1)
        p.get(keys.popular_list)
        p.get(keys.holdout)
        p.hgetall(keys.merch_rules)
        p.hget(keys.shop_stats, "repeat_share")
        # HGETs, not one HMGET: the tombstone lookup stays the only HMGET (counted by tests)
        p.hget(keys.shop_stats, "items")
        p.hget(keys.shop_stats, "recent_weight")

    replies = await store.pipeline("snapshot", build)
    version, exps, registry, gens, mask, raw_popular, raw_holdout, rules = replies[:8]
    share, items_etag, recent = replies[8:]
    popular = _popular(raw_popular)
    return Snapshot(
        experiments=_experiments(exps, int(now_s * 1000)),
        segments=_registry(registry),
        generations=parse_gens(gens),
        mask=frozenset(m.decode() for m in mask),
        popular=popular,
        loaded_at_s=now_s,
        popular_view=ListView.of(popular, POPULAR_TAKE),
        revision=int(version) if version and version.isdigit() else 0,
        holdout=_holdout(raw_holdout, holdout_default),
        rules=_rules(rules, seg_key, int(now_s * 1000)) if seg_key else (),
        repeat_share=_share(share),
        recent_weight=_share(recent) or 0.0,
        items_etag=items_etag.decode() if items_etag else "",
    )


async def load_items(store: Store, keys: Keys) -> ShopItems:
    """The shop's purchases per item as the list build stored them (empty when absent or
    malformed: buy-again falls back to the segment's list)."""
    raw = (await store.pipeline("snapshot", lambda p: p.get(keys.item_stats)))[0]
    # 20,000 rows take tens of milliseconds to prepare: off the event loop
    return await asyncio.to_thread(_items, raw)


def _items(raw: bytes | None) -> ShopItems:
    try:
        rows = msgpack.unpackb(raw) if raw is not None else []
        return ShopItems.of((str(i), float(n), str(c)) for i, n, c in rows)
    except (ValueError, TypeError, msgpack.UnpackException):
        LOG.warning("stored item purchases are malformed; ignored")
        return ShopItems()


def _share(raw: bytes | None) -> float | None:
    """A stored share in [0, 1], else None (absent or malformed: the ranking's default)."""
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def _holdout(raw: bytes | None, default: float) -> float:
    if raw is None:
        return default
    try:
        share = orjson.loads(raw)["share"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        share = None
    if not isinstance(share, int | float) or not 0 <= share <= 1:
        LOG.warning("stored holdout is malformed; using the setting's share")
        return default
    return float(share)


class SnapshotHolder:
    """The current snapshot of one worker; keeps the last good popular list across failures."""

    def __init__(
        self,
        store: Store,
        keys: Keys,
        refresh_ms: int,
        holdout_default: float = 0.0,
        seg_key: bytes = b"",
    ) -> None:
        self.store = store
        self.keys = keys
        self.holdout_default = holdout_default
        self.seg_key = seg_key  # hashes the rules' segment names for the edge
        self.refresh_s = refresh_ms / 1000
        self.current = Snapshot()
        self.stop = asyncio.Event()
        # Loads are numbered as they start; one that started before the installed snapshot's
        # (a background refresh that read Redis before a hard purge and finished after the
        # purge's own refresh) is dropped, never installed over newer data.
        self._started = 0
        self._installed = 0

    async def refresh(self) -> Snapshot:
        """Reload now; on failure keep serving the current snapshot and re-raise."""
        self._started += 1
        seq = self._started
        snap = await load(
            self.store, self.keys, self.store.clock(), self.holdout_default, self.seg_key
        )
        if seq < self._installed:
            return self.current
        if snap.items_etag and snap.items_etag == self.current.items_etag:
            snap = replace(snap, shop_items=self.current.shop_items)
        elif snap.items_etag:
            try:
                snap = replace(snap, shop_items=await load_items(self.store, self.keys))
            except StoreUnavailable:  # the rest is fresh: keep the old items, retry next time
                old = self.current
                snap = replace(snap, shop_items=old.shop_items, items_etag=old.items_etag)
            if seq < self._installed:  # a newer load installed while this one read the items
                return self.current
        if snap.popular is None and self.current.popular is not None:
            snap = replace(
                snap, popular=self.current.popular, popular_view=self.current.popular_view
            )
        self.current, self._installed = snap, seq
        self.store.metrics.snapshot_refresh.labels("ok").inc()
        return snap

    async def run(self) -> None:
        """Refresh until ``stop`` is set (the lifespan sets it, then cancels the task).

        The event, not only cancellation, ends the loop: a cancellation landing inside a
        redis-py call can surface as a connection error, which the loop must survive.
        """
        while not self.stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # keep the loop alive whatever Redis does
                self.store.metrics.snapshot_refresh.labels("failed").inc()
                LOG.debug("snapshot refresh failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.refresh_s)


def edge_config(snap: Snapshot, *, max_age_s: int, now_ms: int) -> tuple[str, dict[str, Any]]:
    """The edge config document and its ETag (a digest of everything but the ETag and time)."""
    default_items: tuple[ListItem, ...] = ()
    if snap.popular is not None:
        default_items = tuple(i for i in snap.popular.items if i.item not in snap.mask)
        default_items = default_items[:DEFAULT_ITEMS]
    cfg = EdgeConfig(
        etag="",
        generated_at_ms=0,
        max_age_s=max_age_s,
        holdout=snap.holdout,
        experiments=tuple(e for e in snap.experiments if _running(e, now_ms)),
        segments=snap.segments,
        generations=snap.generations,
        item_mask=snap.mask,
        routes=DEFAULT_ROUTES,
        default_items=default_items,
        rules=tuple(r for r in snap.rules if r.end_ms is None or now_ms < r.end_ms),
    )
    doc = edge_config_to_json(cfg)
    etag = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    doc["etag"] = etag
    doc["generated_at_ms"] = now_ms
    return etag, doc
