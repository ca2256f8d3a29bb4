"""What edges fetch and cache: segment lists and the edge config; and their heartbeats.

- ``GET /v1/segments/{hseg}/list?variant=&route=``: the wire form of one segment list, with
  masked (out-of-stock) items removed, an ETag (304 on If-None-Match), ``CDN-Cache-Control``
  with stale-while-revalidate and stale-if-error, and ``Cache-Tag`` (seg, route, exp and the
  sku tags of its items). An hseg the registry does not know is a 404, never computed.
- ``GET /v1/edge/config``: ``cache_keys.wire.edge_config_to_json`` of the snapshot, ETag'd,
  with the snapshot's config revision in ``P13n-Config-Revision`` (on 304s too).
- ``POST /v1/edge/heartbeat``: an edge reports its config ETag, the revision of the newest
  config it pulled, the ids of the purges pushed to it (the last 50), hit/stale/miss
  counts and, optionally, its traffic counters since start (``cache_keys.costs``: requests,
  bytes sent, origin fetches and bytes, uptime; for the console's offload and egress
  estimate): bounded however many tags were ever purged. Stored in ``Keys.edges`` for
  invalidation status, and its counts appended to ``Keys.edge_history`` for the console's
  hit-ratio chart. Older edges' per-tag ``generations`` are still accepted.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import msgpack
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import cache_tag_header, is_hseg, tag
from cache_keys.costs import TRAFFIC_FIELDS
from cache_keys.errors import WireError
from cache_keys.segments import ANON_HSEG
from cache_keys.wire import SegmentList, parse_segment_list, segment_list_to_json
from cache_keys.wire._check import SLUG_RE, whole_number
from origin.auth import require
from origin.body import read_json
from origin.errors import BadRequest, NotFound
from origin.snapshot import DEFAULT_ROUTES, edge_config
from origin.state import AppState, get_state
from origin.store import StoreUnavailable
from segmenter.schema import EDGE_HISTORY_MAXLEN

__all__ = ["routes"]

LIST_POLICY = DEFAULT_ROUTES["home"]
MAX_HEARTBEAT_BYTES = 16 * 1024
REVISION_HEADER = "P13n-Config-Revision"


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return f'"{etag}"' in tags or "*" in tags


def _cache_headers(etag: str, max_age_s: int, swr_s: int, sie_s: int) -> dict[str, str]:
    policy = f"max-age={max_age_s}, stale-while-revalidate={swr_s}, stale-if-error={sie_s}"
    return {"ETag": f'"{etag}"', "Cache-Control": f"public, {policy}", "CDN-Cache-Control": policy}


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    q = dict(request.query_params)
    unknown = set(q) - allowed
    if unknown:
        raise BadRequest(f"unknown query parameters {sorted(unknown)}", field=sorted(unknown)[0])
    return q


def _masked(sl: SegmentList, mask: frozenset[str]) -> tuple[SegmentList, str]:
    removed = sorted(i.item for i in sl.items if i.item in mask)
    if not removed:
        return sl, sl.etag
    digest = hashlib.sha256("\n".join(removed).encode()).hexdigest()[:10]
    return replace(
        sl, items=tuple(i for i in sl.items if i.item not in mask)
    ), f"{sl.etag}-m{digest}"


def _tags(state: AppState, sl: SegmentList, variant: str, route: str | None) -> str:
    exps = [
        e
        for e in state.snapshot.current.experiments
        if any(v.list_variant == variant for v in e.variations)
    ]
    routes = [route] if route else sorted(DEFAULT_ROUTES)
    out = [tag("seg", sl.hseg), *(tag("route", r) for r in routes)]
    out += [tag("exp", e.key) for e in exps]
    for item in sl.items:
        try:
            out.append(tag("sku", item.item))
        except ValueError:  # a sku that cannot be a tag: purged by its seg/route tags instead
            continue
    return cache_tag_header(dict.fromkeys(out))


async def segment_list(request: Request) -> Response:
    """One segment list, as edges cache it."""
    state = get_state(request)
    q = _query(request, {"variant", "route"})
    hseg = request.path_params["hseg"]
    if not is_hseg(hseg):
        raise BadRequest("hseg must be 16 characters of a-z2-7", field="hseg")
    variant = q.get("variant", "control")
    route = q.get("route")
    for name, value in (("variant", variant), ("route", route)):
        if value is not None and not SLUG_RE.fullmatch(value):
            raise BadRequest(f"{name} must be 1-40 characters of a-z, 0-9 and '-'", field=name)
    k = state.keys
    # The anonymous segment (no cookie, forged cookie, opt-out) is served the popular list,
    # so first visits are cacheable at the edge like every other segment.
    anon = hseg == ANON_HSEG

    def build(p: Any) -> None:
        p.hget(k.list_registry, hseg)
        p.get(k.popular_list if anon else k.segment_list(hseg, variant))

    registered, raw = await state.store.pipeline("segment_list", build)
    if registered is None and not anon:
        raise NotFound(f"segment {hseg} is not in the registry", field="hseg")
    if raw is None:
        raise NotFound(f"segment {hseg} has no list for variant {variant!r}", field="variant")
    try:
        stored = parse_segment_list(msgpack.unpackb(raw))
    except (WireError, ValueError, TypeError, msgpack.UnpackException) as exc:
        raise NotFound(f"the stored list of {hseg}/{variant} is unreadable") from exc
    sl, etag = _masked(stored, state.snapshot.current.mask)
    headers = _cache_headers(etag, LIST_POLICY.max_age_s, LIST_POLICY.swr_s, LIST_POLICY.sie_s)
    headers["Cache-Tag"] = _tags(state, sl, variant, route)
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    doc = segment_list_to_json(replace(sl, etag=etag))
    return Response(orjson.dumps(doc), media_type="application/json", headers=headers)


async def config(request: Request) -> Response:
    """The edge config (experiments, registry, generations, mask, routes, default items)."""
    state = get_state(request)
    _query(request, set())
    try:  # edges fetch this rarely (once per max-age, behind their cache): always reload
        snap = await state.snapshot.refresh()
    except StoreUnavailable:
        snap = state.snapshot.current
        if not snap.loaded:
            raise  # nothing good to serve: 503, and the edge keeps its stale copy
    max_age = state.settings.edge_config_max_age_s
    etag, doc = edge_config(snap, max_age_s=max_age, now_ms=int(state.clock() * 1000))
    headers = _cache_headers(etag, max_age, 60, 86400)
    headers["ETag"] = f'W/"{etag}"'  # generated_at_ms differs between equivalent bodies
    headers[REVISION_HEADER] = str(snap.revision)
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(orjson.dumps(doc), media_type="application/json", headers=headers)


HEARTBEAT_FIELDS = frozenset(
    {
        "edge_id",
        "config_etag",
        "config_revision",
        "generations",
        "counts",
        "applied_purges",
        "traffic",
    }
)
# An edge's answer counter's ceiling (exact in every JSON reader; the pipeline page sums
# them across edges, and its JSON writer stops at 64 bits).
MAX_COUNT = 2**53
# Answer tiers an edge reports (RFC 9211 terms plus the edge's own fallbacks).
HEARTBEAT_TIERS = frozenset({"hit", "stale", "miss", "origin", "default", "error"})


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or set(value) - HEARTBEAT_TIERS:
        raise BadRequest(
            f"counts must be an object with keys among {sorted(HEARTBEAT_TIERS)}", field="counts"
        )
    out = {str(k): whole_number(v) for k, v in value.items()}
    if not all(v is not None and 0 <= v <= MAX_COUNT for v in out.values()):
        raise BadRequest(f"counts must be integers from 0 to {MAX_COUNT}", field="counts")
    return {k: v for k, v in out.items() if v is not None}


def _traffic(value: Any) -> dict[str, int] | None:
    """The edge's traffic counters since start; None from an edge that sends none (older)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != set(TRAFFIC_FIELDS):
        raise BadRequest(f"traffic must be an object of {list(TRAFFIC_FIELDS)}", field="traffic")
    out: dict[str, int] = {}
    for k in TRAFFIC_FIELDS:
        v = whole_number(value[k])
        if v is None or not 0 <= v <= MAX_COUNT:
            raise BadRequest(f"traffic.{k} must be an integer from 0 to {MAX_COUNT}",
                             field=f"traffic.{k}")  # fmt: skip
        out[k] = v
    # no cross-check: background revalidations can make fetches outnumber requests
    return out


def _purge_ids(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 100:
        raise BadRequest("applied_purges must be a list of at most 100 ids", field="applied_purges")
    if not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise BadRequest("applied_purges must hold invalidation ids", field="applied_purges")
    return list(value)


def _revision(value: Any) -> int:
    n = whole_number(value)
    if n is None or n < 0:
        raise BadRequest("config_revision must be a non-negative integer", field="config_revision")
    return n


def _gens(value: Any) -> dict[str, list[int]]:
    if not isinstance(value, dict) or len(value) > 10_000:
        raise BadRequest(
            "generations must be an object of tag -> [soft, hard]", field="generations"
        )
    out = {}
    for t, pair in value.items():
        ok = isinstance(pair, list) and len(pair) == 2
        nums = [n for n in map(whole_number, pair) if n is not None] if ok else []
        if len(nums) != 2:
            raise BadRequest(f"generations.{t} must be [soft, hard]", field=f"generations.{t}")
        out[str(t)] = nums
    return out


async def heartbeat(request: Request) -> Response:
    """Record an edge's heartbeat."""
    state = get_state(request)
    # A token even in trusted local mode (that mode trusts ``?user=``, not anonymous writers
    # of what operators read as the edges' health); ``p13n up`` gives its edge one.
    require(request, state.settings, ("service",))
    doc, _ = await read_json(request, MAX_HEARTBEAT_BYTES)
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object", field="$")
    unknown = set(doc) - HEARTBEAT_FIELDS
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}", field=sorted(unknown)[0])
    edge_id, etag = doc.get("edge_id"), doc.get("config_etag", "")
    if not isinstance(edge_id, str) or not SLUG_RE.fullmatch(edge_id):
        raise BadRequest("edge_id must be 1-40 characters of a-z, 0-9 and '-'", field="edge_id")
    if not isinstance(etag, str) or len(etag) > 128:
        raise BadRequest("config_etag must be a string of at most 128 characters", field="etag")
    record = {
        "edge_id": edge_id,
        "config_etag": etag,
        "config_revision": _revision(doc.get("config_revision", 0)),
        "generations": _gens(doc.get("generations", {})),
        "counts": _counts(doc.get("counts", {})),
        "applied_purges": _purge_ids(doc.get("applied_purges", [])),
        "traffic": _traffic(doc.get("traffic")),
        "received_ms": int(state.clock() * 1000),
    }
    sample = {
        "edge": edge_id,
        "ms": record["received_ms"],
        "counts": orjson.dumps(record["counts"]),
    }

    def build(p: Any) -> None:
        p.hset(state.keys.edges, edge_id, orjson.dumps(record))
        p.xadd(state.keys.edge_history, sample, maxlen=EDGE_HISTORY_MAXLEN, approximate=True)

    await state.store.pipeline("heartbeat", build)
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    """Edge feed routes."""
    return [
        Route("/v1/segments/{hseg}/list", segment_list, methods=["GET"]),
        Route("/v1/edge/config", config, methods=["GET"]),
        Route("/v1/edge/heartbeat", heartbeat, methods=["POST"]),
    ]
