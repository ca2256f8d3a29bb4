"""The edge-config document and the segment-list document, version 1.

The origin serves both as JSON; every edge parses them with these functions, so a change
to either is a change of this module and its vectors. Unknown fields are ignored (forward
compatibility); a wrong type or an out-of-range value raises ``WireError`` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cache_keys.errors import WireError
from cache_keys.segments import is_hseg
from cache_keys.wire import _check as c
from cache_keys.wire.labels import labels_to_json, parse_labels
from cache_keys.wire.merch import MerchRule, parse_rules

__all__ = [
    "EDGE_WEIGHT_NAMES",
    "EXPERIMENT_STATUSES",
    "ORIGIN_WEIGHT_NAMES",
    "EdgeConfig",
    "Experiment",
    "ListItem",
    "RoutePolicy",
    "SegmentEntry",
    "SegmentList",
    "Variation",
    "edge_config_to_json",
    "list_item_to_json",
    "parse_edge_config",
    "parse_list_item",
    "parse_segment_list",
    "segment_list_to_json",
]

EXPERIMENT_STATUSES = frozenset({"draft", "running", "stopped"})
MAX_EXPERIMENTS = 200
MAX_SEGMENTS = 1000
MAX_LIST_ITEMS = 500
MAX_MASK = 10_000
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]{0,127}")
_TAG_RE = re.compile(r"\*|(sku|cat|seg|route|exp):[a-z0-9][a-z0-9._/-]{0,127}")
# The edge rerank's weights (``edge.rerank``) and the origin ranking's (its signals).
EDGE_WEIGHT_NAMES = frozenset({"base", "category_boost", "popularity", "recency", "price"})
ORIGIN_WEIGHT_NAMES = EDGE_WEIGHT_NAMES | {"repeat"}


@dataclass(frozen=True, slots=True)
class Variation:
    """One arm: which list variant it serves, how it ranks, and optionally where its fallback
    goes.

    ``weights`` are the edge rerank's; ``origin_weights`` the origin ranking's (when empty,
    the origin reads the names it shares with ``weights``, as before they were split);
    ``strategy`` names the catalog strategy they came from, if any.
    """

    name: str
    list_variant: str = "control"
    origin: str | None = None
    origin_path: str | None = None
    weights: dict[str, float] = field(default_factory=dict)
    strategy: str | None = None
    origin_weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Experiment:
    """An A/B split as the edge needs it (GrowthBook semantics)."""

    key: str
    seed: str
    variations: tuple[Variation, ...]
    weights: tuple[float, ...]
    coverage: float = 1.0
    hash_version: int = 2
    bucket_version: int = 0
    namespace: tuple[str, float, float] | None = None
    segments: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    start_ms: int | None = None
    stop_ms: int | None = None
    status: str = "draft"

    def is_live(self, now_ms: int) -> bool:
        """Running, and inside its scheduled window."""
        if self.status != "running":
            return False
        if self.start_ms is not None and now_ms < self.start_ms:
            return False
        return self.stop_ms is None or now_ms < self.stop_ms


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Caching and fallback policy of one personalization route."""

    route: str
    personal: bool = False
    max_age_s: int = 60
    swr_s: int = 300
    sie_s: int = 86400
    k: int = 12
    category_cap: int = 3
    origin_budget_ms: int = 300


@dataclass(frozen=True, slots=True)
class ListItem:
    """One candidate of a segment list."""

    item: str
    score: float
    category: str = ""
    price: float = 0.0
    in_stock: bool = True
    durable: bool = False
    name: str = ""  # labels for people (``cache_keys.wire.labels``): "" when the catalog has none
    image_url: str = ""


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """A segment in the registry: its list versions by list variant."""

    hseg: str
    lists: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """Everything an edge needs besides the lists themselves."""

    etag: str
    generated_at_ms: int
    max_age_s: int = 30
    # share of shoppers in the global holdout (``cache_keys.experiments.in_holdout``)
    holdout: float = 0.0
    experiments: tuple[Experiment, ...] = ()
    segments: dict[str, SegmentEntry] = field(default_factory=dict)
    generations: dict[str, tuple[int, int]] = field(default_factory=dict)
    item_mask: frozenset[str] = frozenset()
    routes: dict[str, RoutePolicy] = field(default_factory=dict)
    default_items: tuple[ListItem, ...] = ()
    # merchandising rules (``cache_keys.wire.merch``), sorted by name, segments hashed
    rules: tuple[MerchRule, ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentList:
    """A ranked candidate list for one (segment, list variant)."""

    hseg: str
    variant: str
    etag: str
    generated_at_ms: int
    items: tuple[ListItem, ...]


def _opt_int(value: Any, f: str) -> int | None:
    return None if value is None else c.integer(value, f)


def _weights(value: Any, f: str, names: frozenset[str]) -> dict[str, float]:
    weights = {
        c.text(k, f, max_len=32): c.number(v, f"{f}.{k}", -100, 100)
        for k, v in c.obj(value, f).items()
    }
    unknown = set(weights) - names
    if unknown:
        raise WireError(f, f"unknown weights {sorted(unknown)}")
    return weights


def _variation(doc: Any, f: str) -> Variation:
    d = c.obj(doc, f)
    weights = _weights(d.get("weights", {}), f"{f}.weights", EDGE_WEIGHT_NAMES)
    origin_weights = _weights(
        d.get("origin_weights", {}), f"{f}.origin_weights", ORIGIN_WEIGHT_NAMES
    )
    strategy = d.get("strategy")
    origin = d.get("origin")
    path = d.get("origin_path")
    return Variation(
        name=c.text(d.get("name"), f"{f}.name", c.SLUG_RE),
        list_variant=c.text(d.get("list_variant", "control"), f"{f}.list_variant", c.SLUG_RE),
        origin=None if origin is None else c.text(origin, f"{f}.origin", _ORIGIN_RE, 300),
        origin_path=None if path is None else c.text(path, f"{f}.origin_path", _PATH_RE, 128),
        weights=weights,
        strategy=None if strategy is None else c.text(strategy, f"{f}.strategy", c.SLUG_RE),
        origin_weights=origin_weights,
    )


def _experiment(doc: Any, f: str) -> Experiment:
    d = c.obj(doc, f)
    variations = tuple(
        _variation(v, f"{f}.variations[{i}]")
        for i, v in enumerate(c.seq(d.get("variations"), f"{f}.variations", 20))
    )
    if len(variations) < 2:
        raise WireError(f"{f}.variations", "needs at least two variations")
    weights = tuple(
        c.number(w, f"{f}.weights[{i}]", 0, 1)
        for i, w in enumerate(c.seq(d.get("weights"), f"{f}.weights", 20))
    )
    if len(weights) != len(variations):
        raise WireError(f"{f}.weights", "must have one weight per variation")
    ns = d.get("namespace")
    namespace = None
    if ns is not None:
        n = c.seq(ns, f"{f}.namespace", 3)
        if len(n) != 3:
            raise WireError(f"{f}.namespace", "must be [layer, start, end]")
        namespace = (
            c.text(n[0], f"{f}.namespace[0]", c.SLUG_RE),
            c.number(n[1], f"{f}.namespace[1]", 0, 1),
            c.number(n[2], f"{f}.namespace[2]", 0, 1),
        )
    status = c.text(d.get("status", "draft"), f"{f}.status")
    if status not in EXPERIMENT_STATUSES:
        raise WireError(f"{f}.status", f"must be one of {sorted(EXPERIMENT_STATUSES)}")
    segs = tuple(c.seq(d.get("segments", []), f"{f}.segments", MAX_SEGMENTS))
    if not all(is_hseg(s) for s in segs):
        raise WireError(f"{f}.segments", "must hold hsegs only")
    return Experiment(
        key=c.text(d.get("key"), f"{f}.key", c.SLUG_RE),
        seed=c.text(d.get("seed"), f"{f}.seed", max_len=80),
        variations=variations,
        weights=weights,
        coverage=c.number(d.get("coverage", 1.0), f"{f}.coverage", 0, 1),
        hash_version=c.integer(d.get("hash_version", 2), f"{f}.hash_version", 1, 2),
        bucket_version=c.integer(d.get("bucket_version", 0), f"{f}.bucket_version"),
        namespace=namespace,
        segments=segs,
        routes=tuple(
            c.text(r, f"{f}.routes", c.SLUG_RE)
            for r in c.seq(d.get("routes", []), f"{f}.routes", 50)
        ),
        start_ms=_opt_int(d.get("start_ms"), f"{f}.start_ms"),
        stop_ms=_opt_int(d.get("stop_ms"), f"{f}.stop_ms"),
        status=status,
    )


def _route(name: str, doc: Any, f: str) -> RoutePolicy:
    d = c.obj(doc, f)
    return RoutePolicy(
        route=c.text(name, f, c.SLUG_RE),
        personal=c.boolean(d.get("personal", False), f"{f}.personal"),
        max_age_s=c.integer(d.get("max_age_s", 60), f"{f}.max_age_s", 0, 86400),
        swr_s=c.integer(d.get("swr_s", 300), f"{f}.swr_s", 0, 7 * 86400),
        sie_s=c.integer(d.get("sie_s", 86400), f"{f}.sie_s", 0, 30 * 86400),
        k=c.integer(d.get("k", 12), f"{f}.k", 1, 100),
        category_cap=c.integer(d.get("category_cap", 3), f"{f}.category_cap", 1, 100),
        origin_budget_ms=c.integer(
            d.get("origin_budget_ms", 300), f"{f}.origin_budget_ms", 1, 10_000
        ),
    )


def parse_list_item(doc: Any, f: str) -> ListItem:
    """One candidate from its JSON form."""
    d = c.obj(doc, f)
    name, image_url = parse_labels(d, f)
    return ListItem(
        item=c.text(d.get("item"), f"{f}.item", c.ITEM_RE),
        score=c.number(d.get("score", 0.0), f"{f}.score", -1e12, 1e12),
        category=c.text(d.get("category", ""), f"{f}.category", max_len=64),
        price=c.number(d.get("price", 0.0), f"{f}.price", 0, 1e9),
        in_stock=c.boolean(d.get("in_stock", True), f"{f}.in_stock"),
        durable=c.boolean(d.get("durable", False), f"{f}.durable"),
        name=name,
        image_url=image_url,
    )


def list_item_to_json(i: ListItem) -> dict[str, Any]:
    """The JSON-ready form of a candidate (labels only when set: lists stay small, and a
    list without them keeps the form and ETag it always had)."""
    return {
        "item": i.item,
        "score": i.score,
        "category": i.category,
        "price": i.price,
        "in_stock": i.in_stock,
        "durable": i.durable,
        **labels_to_json(i.name, i.image_url, None),  # the price is a field of its own here
    }


def _items(value: Any, f: str) -> tuple[ListItem, ...]:
    return tuple(
        parse_list_item(v, f"{f}[{i}]") for i, v in enumerate(c.seq(value, f, MAX_LIST_ITEMS))
    )


def _generations(value: Any) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for t, pair in c.obj(value, "generations").items():
        c.text(t, "generations", _TAG_RE, 140)
        p = c.seq(pair, f"generations.{t}", 2)
        if len(p) != 2:
            raise WireError(f"generations.{t}", "must be [soft, hard]")
        out[t] = (c.integer(p[0], f"generations.{t}[0]"), c.integer(p[1], f"generations.{t}[1]"))
    return out


def parse_edge_config(doc: Any) -> EdgeConfig:
    """Validate a decoded edge-config JSON document."""
    d = c.obj(doc, "$")
    c.version(d, "v", 1)
    segments: dict[str, SegmentEntry] = {}
    for h, entry in c.obj(d.get("segments", {}), "segments").items():
        if not is_hseg(h):
            raise WireError("segments", f"key {h[:20]!r} is not an hseg")
        lists = c.obj(c.obj(entry, f"segments.{h}").get("lists", {}), f"segments.{h}.lists")
        segments[h] = SegmentEntry(
            hseg=h,
            lists={
                c.text(k, f"segments.{h}.lists", c.SLUG_RE): c.text(v, f"segments.{h}.lists.{k}")
                for k, v in lists.items()
            },
        )
    if len(segments) > MAX_SEGMENTS:
        raise WireError("segments", f"more than {MAX_SEGMENTS} segments")
    return EdgeConfig(
        etag=c.text(d.get("etag"), "etag", max_len=128),
        generated_at_ms=c.integer(d.get("generated_at_ms"), "generated_at_ms"),
        max_age_s=c.integer(d.get("max_age_s", 30), "max_age_s", 1, 3600),
        holdout=c.number(d.get("holdout", 0.0), "holdout", 0, 1),
        experiments=tuple(
            _experiment(e, f"experiments[{i}]")
            for i, e in enumerate(c.seq(d.get("experiments", []), "experiments", MAX_EXPERIMENTS))
        ),
        segments=segments,
        generations=_generations(d.get("generations", {})),
        item_mask=frozenset(
            c.text(s, "item_mask", c.ITEM_RE)
            for s in c.seq(d.get("item_mask", []), "item_mask", MAX_MASK)
        ),
        routes={
            r: _route(r, p, f"routes.{r}") for r, p in c.obj(d.get("routes", {}), "routes").items()
        },
        default_items=_items(d.get("default_items", []), "default_items"),
        rules=parse_rules(d.get("rules", [])),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list | frozenset | set):
        items = sorted(value) if isinstance(value, frozenset | set) else value
        return [_plain(v) for v in items]
    return value


def edge_config_to_json(cfg: EdgeConfig) -> dict[str, Any]:
    """The JSON-ready form of an edge config (``parse_edge_config`` reads it back)."""
    doc: dict[str, Any] = {"v": 1, **_plain(asdict(cfg))}
    doc["default_items"] = [list_item_to_json(i) for i in cfg.default_items]
    for r in doc["routes"].values():
        del r["route"]
    for s in doc["segments"].values():
        del s["hseg"]
    if not doc["rules"]:
        del doc["rules"]  # absent is empty: configs without rules stay as they were
    return doc


def parse_segment_list(doc: Any) -> SegmentList:
    """Validate a decoded segment-list JSON document."""
    d = c.obj(doc, "$")
    c.version(d, "v", 1)
    hseg = c.text(d.get("hseg"), "hseg")
    if not is_hseg(hseg):
        raise WireError("hseg", "is not an hseg")
    return SegmentList(
        hseg=hseg,
        variant=c.text(d.get("variant"), "variant", c.SLUG_RE),
        etag=c.text(d.get("etag"), "etag", max_len=128),
        generated_at_ms=c.integer(d.get("generated_at_ms"), "generated_at_ms"),
        items=_items(d.get("items"), "items"),
    )


def segment_list_to_json(sl: SegmentList) -> dict[str, Any]:
    """The JSON-ready form of a segment list (written out field by field: edges encode a
    list on every refresh, and ``asdict`` costs ten times as much)."""
    return {
        "v": 1,
        "hseg": sl.hseg,
        "variant": sl.variant,
        "etag": sl.etag,
        "generated_at_ms": sl.generated_at_ms,
        "items": [list_item_to_json(i) for i in sl.items],
    }
