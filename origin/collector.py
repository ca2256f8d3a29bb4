"""The event collector: ``POST /v1/events`` and the published schema ``GET /v1/schemas/events``.

    POST {"v": 1, "event_id": …}               one event: 202, or 400 with the reason (422
                                               when only ts is past the clock plus skew)
    POST {"events": [ … up to 500 … ]}         a batch: 202 with one result per event

    opted out (Sec-GPC: 1 or the opt-out cookie)  202 {"accepted": 0, "rejected": 0,
                                               "opted_out": true, "results": []}

``user`` is a shopper id of either kind, the anonymous id or the shop's customer id (the one
id policy, ``segmenter.shoppers``); a browser's events get it from the shopper cookie. An
``identify`` event (``user`` the customer, ``anon`` the anonymous id, from the cookie when
absent) links the two: later events of the anonymous id in that session are stored as the
customer's (``segmenter.stitching``).

Valid events are appended (msgpack) to the partition stream of their shopper; invalid ones are
answered with their reasons and written to the dead-letter stream (capped at ``DLQ_MAXLEN``)
with the original bytes: the whole body when it is one event or not JSON, the item's own
bytes for a batch item. The rate limit is taken before anything is written, dead letters
included. RATE_LIMITS: token buckets, in events, per client kind (429 with Retry-After):

    service   a request with a service (or admin) bearer token, the shop's backend: one
              bucket per token, P13N_COLLECTOR_SERVICE_RATE_PER_S / _BURST (large); no
              site key needed; any other role is 403, an unknown token 401
    shopper   a browser's request with the shopper cookie: one bucket per shopper (site key
              and anonymous id), P13N_COLLECTOR_RATE_PER_S / _BURST, whoever carries it (an
              edge forwards the cookie, so shoppers behind one edge no longer share a bucket)
              and also the peer's bucket, P13N_COLLECTOR_PEER_RATE_PER_S / _BURST (larger:
              it bounds one client inventing shopper ids, and an edge's whole traffic)
    browser without the cookie: one bucket per site key and TCP peer, the shopper budget

An opted-out request is read no further: nothing is stored, not even as a
dead letter, whatever the body names as ``user``.
Redis down: 503 with Retry-After and nothing is accepted; entries that did reach a stream
before the failure are deduplicated by ``event_id`` when the client retries the batch.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cachetools import TTLCache
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cache_keys import is_shopper_id
from origin.auth import role_of
from origin.body import too_deep
from origin.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Unprocessable,
)
from origin.identity import identify_cookie, is_opted_out
from origin.state import AppState, get_state
from segmenter import event
from segmenter.event import Event, Rejection
from segmenter.event_jsonschema import MAX_BATCH, event_json_schema
from segmenter.registry import VERSIONS
from segmenter.schema import DLQ_MAXLEN, STREAM_MAXLEN, partition_of, tombstone_digest
from segmenter.shoppers import ShopperIds
from segmenter.stitching import credit, parse_link, stage_link
from segmenter.store import dlq_fields

__all__ = ["Budget", "RateLimiter", "routes"]

SITE_KEY_HEADER = "x-p13n-site-key"
_LIMITER = "collector.limiter"
BROWSER, PEER, SERVICE = "shopper", "peer", "service"
# Who may send events with a bearer token (the shop's backend): its own, larger budget.
SENDER_ROLES = frozenset({"service", "admin"})
# The answer for an erased shopper's event: refused, stored nowhere, not even dead-lettered.
# Valid by Event v1's schema, but later than the collector's clock allows: a single event
# so is 422 (the OpenAPI document can state no bound that moves with the clock).
FUTURE = Rejection("ts", "in the future beyond the allowed clock skew")
ERASED = Rejection("user", "the shopper was erased; nothing is stored for them")


# Per limiter: at most this many clients' buckets (the least recently used goes first,
# a reset to a full bucket), each kept at most until it has refilled.
MAX_BUCKETS = 100_000
MAX_BUCKET_TTL_S = 3600.0


class RateLimiter:
    """Token buckets per client, in events; ``take`` returns 0 or seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        # A bucket left alone refills to ``burst`` in burst/rate seconds, and a full bucket is
        # what ``take`` assumes for a client it has no entry for: an entry is dropped then,
        # so the map holds only the clients of the last refill time (per-shopper buckets
        # would otherwise pile up for every shopper seen in the last hour).
        refill_s = burst / rate_per_s if rate_per_s > 0 else MAX_BUCKET_TTL_S
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(
            MAX_BUCKETS, ttl=min(MAX_BUCKET_TTL_S, refill_s), timer=clock
        )

    def peek(self, client: str, n: int) -> float:
        """What ``take`` would answer, taking nothing."""
        now = self.clock()
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if n > tokens:
            return (n - tokens) / self.rate if self.rate > 0 else MAX_BUCKET_TTL_S
        return 0.0

    def take(self, client: str, n: int) -> float:
        now = self.clock()
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if n > tokens:
            self._buckets[client] = (tokens, now)
            return (n - tokens) / self.rate if self.rate > 0 else MAX_BUCKET_TTL_S
        self._buckets[client] = (tokens - n, now)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class Budget:
    """Which token buckets one request draws from: (limiter name, client key) pairs."""

    takes: tuple[tuple[str, str], ...]


def _client(request: Request, state: AppState) -> Budget:
    """The request's rate budget (see ``RATE_LIMITS`` in the module docstring)."""
    caller = role_of(request, state.settings)  # 401 for a token nobody configured
    if caller is not None:
        if caller.role not in SENDER_ROLES:
            raise Forbidden(
                f"role {caller.role!r} may not send events; a service token may",
                role=caller.role,
            )
        return Budget(((SERVICE, f"token:{caller.fingerprint}"),))
    keys = state.settings.collector_site_keys
    site = request.headers.get(SITE_KEY_HEADER) or request.query_params.get("site_key", "")
    if keys and site not in keys:
        raise Forbidden("a known publishable site key is required", field="site_key")
    peer = f"{site}|peer:{request.client.host if request.client else '-'}"
    cookie = identify_cookie(request)
    shopper = None if cookie.optout else cookie.sid
    if shopper is None:
        return Budget(((BROWSER, peer),))
    # Per shopper, whoever carries the request (every shopper behind an edge shares its
    # address); the peer's own, larger bucket bounds one client minting ids to dodge it.
    return Budget(((BROWSER, f"{site}|shopper:{shopper}"), (PEER, peer)))


async def _read(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _enrich(doc: Any, request: Request) -> Any:
    """Fill what a browser cannot: ``user`` from the (HttpOnly) shopper cookie unless opted
    out, and ``traceparent`` from the request when the event carries none."""
    if not isinstance(doc, dict):
        return doc
    slot = "anon" if doc.get("type") == "identify" else "user"
    if slot not in doc:
        shopper = identify_cookie(request)
        if shopper.sid and not shopper.optout:
            doc = {**doc, slot: shopper.sid}
    trace = request.headers.get("traceparent", "")
    if trace and "traceparent" not in doc and event.TRACEPARENT_RE.fullmatch(trace):
        doc = {**doc, "traceparent": trace}
    return doc


def _check(doc: Any, now_ms: int, skew_ms: int, ids: ShopperIds) -> Event | Rejection:
    deep = too_deep(doc)  # before anything walks it
    if deep is not None:
        return Rejection("$", deep)
    result = event.validate(doc)
    if isinstance(result, Event) and result.ts > now_ms + skew_ms:
        return FUTURE
    return ids.check_event(result) if isinstance(result, Event) else result


def _user_of(doc: Any) -> str:
    user = doc.get("user") if isinstance(doc, dict) else None
    return user if isinstance(user, str) and event.USER_RE.fullmatch(user) else ""


def _bus(state: AppState) -> Any:
    if state.redis is None:
        raise Unavailable("the event bus is not configured")
    return state.redis


async def _lookups(
    state: AppState, users: list[str]
) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """Which of ``users`` were erased (tombstoned), and the sign-in links of the anonymous
    ones: one round trip for the whole batch."""
    named = sorted({u for u in users if u})
    if not named:
        return set(), {}
    anons = [u for u in named if is_shopper_id(u)]
    try:
        pipe = _bus(state).pipeline(transaction=False)
        pipe.hmget(state.keys.tombstones, [tombstone_digest(u) for u in named])
        for u in anons:
            pipe.get(state.keys.link(u))
        marks, *links = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise Unavailable("the event bus is unavailable; retry the whole batch") from exc
    erased = {u for u, mark in zip(named, marks, strict=True) if mark is not None}
    linked = {u: lk for u, raw in zip(anons, links, strict=True) if (lk := parse_link(raw))}
    return erased, linked


async def _store(
    state: AppState, valid: list[Event], dead: list[tuple[Rejection, bytes, str]]
) -> None:
    keys, now = state.keys, int(time.time() * 1000)
    pipe = _bus(state).pipeline(transaction=False)
    for ev in valid:
        stream = keys.stream(partition_of(ev.user, state.settings.partitions))
        pipe.xadd(stream, {"e": event.encode(ev)}, maxlen=STREAM_MAXLEN, approximate=True)
        if ev.type == "identify":
            stage_link(pipe, keys, ev)
    for rej, raw, user in dead:
        fields = dlq_fields(rej, raw, "collector", user=user, received_ms=now)
        pipe.xadd(
            keys.dlq,
            dict(zip(fields[::2], fields[1::2], strict=True)),
            maxlen=DLQ_MAXLEN,
            approximate=True,
        )
    try:
        await pipe.execute()
    except (RedisError, OSError) as exc:
        raise Unavailable("the event bus is unavailable; retry the whole batch") from exc


def _docs(doc: Any) -> tuple[list[Any], bool]:
    if isinstance(doc, dict) and set(doc) == {"events"}:
        events = doc["events"]
        if not isinstance(events, list) or not events:
            raise BadRequest("events must be a non-empty array", field="events")
        if len(events) > MAX_BATCH:
            raise PayloadTooLarge(f"{len(events)} events; a batch holds at most {MAX_BATCH}")
        return events, False
    return [doc], True


def _observe(
    state: AppState, valid: list[Event], dead: list[tuple[Rejection, bytes, str]], now: int,
    *, docs: list[Any], checked: list[Event | Rejection],
) -> None:  # fmt: skip
    m = state.metrics
    m.events.labels("accepted").inc(len(valid))
    m.events.labels("rejected").inc(len(dead))
    for rej, _, _ in dead:
        m.rejected.labels(rej.field).inc()
    for doc, result in zip(docs, checked, strict=True):  # schema evolution monitoring
        v = doc.get("v") if isinstance(doc, dict) else None
        label = str(v) if type(v) is int and v in VERSIONS else "unknown"
        m.event_versions.labels(
            label, "accepted" if isinstance(result, Event) else "rejected"
        ).inc()
    for ev in valid:  # client clock -> collector receipt (the first hop of the freshness path)
        m.event_ingest_seconds.observe(max(0.0, (now - ev.ts) / 1000))


# A JSON string (escapes included) or one structural character: enough to find where each
# item of a batch starts and ends without parsing it (nor recursing into it).
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_JSON_WS = b" \t\n\r"


def _item_bytes(raw: bytes, count: int) -> list[bytes] | None:
    """The bytes of each item of a ``{"events": [...]}`` body, as sent (found by the
    structural characters outside strings, however deep an item nests); None when they
    cannot be told apart (then a dead letter falls back to the item re-serialized).

    ``b'{"events": [{"v": 1}, 7]}'`` -> ``[b'{"v": 1}', b'7']``
    """
    depth, start, out = 0, -1, []
    for m in _TOKENS.finditer(raw):
        tok = m.group()
        if tok[0] == 0x22:  # a string: no structure inside
            continue
        if tok in (b"[", b"{"):
            depth += 1
            if depth == 2 and tok == b"[":
                start = m.end()
        elif tok in (b"]", b"}"):
            if depth == 2 and tok == b"]":
                out.append(raw[start : m.start()].strip(_JSON_WS))
                break
            depth -= 1
        elif depth == 2:  # a comma between two items of the events array
            out.append(raw[start : m.start()].strip(_JSON_WS))
            start = m.end()
    return out if len(out) == count and start >= 0 else None


def _dumps(doc: Any, raw: bytes) -> bytes:
    """An item re-serialized for its dead letter; the whole body when even that fails
    (nested past what the serializer takes)."""
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return raw


def _opted_out_answer() -> Response:
    body = {"accepted": 0, "rejected": 0, "opted_out": True, "results": []}
    return JSONResponse(body, status_code=202, headers={"Cache-Control": "no-store"})


def _limiter(state: AppState, name: str) -> RateLimiter:
    found = state.extras.get(f"{_LIMITER}.{name}")
    if found is None:
        s = state.settings
        rate, burst = {
            BROWSER: (s.collector_rate_per_s, s.collector_burst),
            PEER: (s.collector_peer_rate_per_s, s.collector_peer_burst),
            SERVICE: (s.collector_service_rate_per_s, s.collector_service_burst),
        }[name]
        found = state.extras[f"{_LIMITER}.{name}"] = RateLimiter(rate, burst)
    return found


def _limit(state: AppState, budget: Budget, n: int) -> None:
    """Take ``n`` events from every bucket of the budget, or 429 naming the one that ran
    dry (nothing is taken from the others then)."""
    picked = [(name, _limiter(state, name), hashlib.sha256(key.encode()).hexdigest()[:16])
              for name, key in budget.takes]  # fmt: skip
    for name, limiter, key in picked:
        wait_s = limiter.peek(key, n)
        if wait_s:
            raise RateLimited(f"collector rate limit ({name})",
                              retry_after_s=max(1, math.ceil(wait_s)))  # fmt: skip
    for _, limiter, key in picked:
        limiter.take(key, n)


async def post_events(request: Request) -> Response:
    """Accept one event or a batch; see the module docstring."""
    state = get_state(request)
    s = state.settings
    budget = _client(request, state)
    if is_opted_out(request):
        return _opted_out_answer()  # nothing read, nothing stored, nothing dead-lettered
    raw = await _read(request, s.max_body_bytes)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _limit(state, budget, 1)
        await _store(state, [], [(Rejection("$", f"not JSON: {exc}"), raw, "")])
        raise BadRequest(f"body is not valid JSON: {exc}", field="$") from exc
    docs, single = _docs(doc)
    _limit(state, budget, len(docs))
    docs = [_enrich(d, request) for d in docs]
    now = int(time.time() * 1000)
    checked = [_check(d, now, s.max_clock_skew_ms, s.shopper_ids) for d in docs]
    # An erased shopper's events, good or bad, are refused before anything is written.
    users = [
        c.user if isinstance(c, Event) else _user_of(d) for c, d in zip(checked, docs, strict=True)
    ]
    erased, links = await _lookups(state, users)
    checked = [
        ERASED if u in erased else credit(c, links.get(u)) if isinstance(c, Event) else c
        for c, u in zip(checked, users, strict=True)
    ]
    valid = [c for c in checked if isinstance(c, Event)]
    dead = _dead_letters(raw, single, docs, checked, users)
    await _store(state, valid, dead)
    _observe(state, valid, dead, now, docs=docs, checked=checked)
    if single and not valid:
        rej = checked[0]
        assert isinstance(rej, Rejection)
        semantic = rej in (FUTURE, event.SIGNS_IN_AS_ITSELF)  # no schema states these: 422
        raise (Unprocessable if semantic else BadRequest)(rej.reason, field=rej.field)
    results = [
        {"index": i, "status": "accepted"}
        if isinstance(c, Event)
        else {"index": i, "status": "rejected", "field": c.field, "reason": c.reason}
        for i, c in enumerate(checked)
    ]
    body = {"accepted": len(valid), "rejected": len(checked) - len(valid), "results": results}
    return JSONResponse(body, status_code=202, headers={"Cache-Control": "no-store"})


def _dead_letters(
    raw: bytes, single: bool, docs: list[Any], checked: list[Event | Rejection], users: list[str]
) -> list[tuple[Rejection, bytes, str]]:
    """(reason, original bytes, shopper) of each invalid event; none for erased shoppers."""
    bad = [i for i, c in enumerate(checked) if isinstance(c, Rejection) and c is not ERASED]
    if not bad:
        return []
    originals = [raw] if single else _item_bytes(raw, len(docs))
    out = []
    for i in bad:
        rej = checked[i]
        assert isinstance(rej, Rejection)
        out.append((rej, originals[i] if originals else _dumps(docs[i], raw), users[i]))
    return out


_SCHEMA_BODY = orjson.dumps(event_json_schema(), option=orjson.OPT_SORT_KEYS)
_SCHEMA_ETAG = '"' + hashlib.sha256(_SCHEMA_BODY).hexdigest()[:16] + '"'


async def get_schema(request: Request) -> Response:
    """Every event version as JSON Schema, cacheable and revalidatable."""
    headers = {"Cache-Control": "public, max-age=3600", "ETag": _SCHEMA_ETAG}
    if request.headers.get("if-none-match") == _SCHEMA_ETAG:
        return Response(status_code=304, headers=headers)
    return Response(_SCHEMA_BODY, media_type="application/schema+json", headers=headers)


def routes() -> list[BaseRoute]:
    """Collector routes."""
    return [
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/schemas/events", get_schema, methods=["GET"]),
    ]
