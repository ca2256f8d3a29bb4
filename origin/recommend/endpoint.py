"""``GET /v1/recommendations`` and ``GET /v1/segment-token``.

Answer (version 1, what edges relay to shoppers)::

    {"v": 1, "route": "home", "items": [{"item": "SKU-1", "score": 1.42, "reason": "segment",
     "name": "Whole milk 1 l", "image_url": "https://…/milk.jpg", "price": 2.49}],
     "variants": {"rail-algo": "boost"}, "degraded": false}

An item carries its catalog labels (name cut to ``MAX_ITEM_NAME``, image URL, and its price
with them) when the catalog has a name or an image for it: from the catalog entry the ranking
read, else from the segment or popular list (the segmenter copied them in).

Personal answers are ``private, no-store`` and set the signed segment and context cookies.
Opted-out shoppers get the popular list and no cookies; nothing is read or written for them.
Shoppers in the global holdout get the popular list too, no cookies, no experiment, and
``"variants": {"p13n-holdout": "holdout"}`` (the others ``"personalized"`` while the holdout
share is above 0), decided from the A/B unit exactly as the edges decide it.
When Redis is down or over budget, or anything else fails, the answer is the last good
popular list held in memory, marked ``"degraded": true``: a shopper never sees a 500.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import ANON_HSEG, KeyPartError, is_shopper_id, new_shopper_id, sign_segment
from cache_keys.experiments import HOLDOUT_ARMS, HOLDOUT_KEY
from cache_keys.keys import normalize_slug
from cache_keys.segments import Hseg
from cache_keys.wire import (
    CONTEXT_COOKIE,
    SEGMENT_COOKIE,
    SHOPPER_COOKIE,
    ContextCookie,
    Experiment,
    ListItem,
    MerchRule,
    RoutePolicy,
    active_rules,
    encode_context,
    fit_image_url,
    fit_name,
    labels_to_json,
    pool_size,
)
from origin.assignment import assign_all, holdout_variant
from origin.errors import BadRequest
from origin.identity import identify
from origin.recommend.features import Features
from origin.recommend.fetch import load_features, load_inputs
from origin.recommend.ranking import (
    Inputs,
    Scored,
    Strategy,
    buy_again,
    diversify,
    merchandise,
    rank,
)
from origin.routing import Endpoint
from origin.snapshot import DEFAULT_ROUTES, Snapshot
from origin.state import AppState, get_state
from origin.store import StoreUnavailable

__all__ = ["hot_routes", "routes"]

LOG = logging.getLogger("p13n.origin.recommend")
NO_STORE = {"Cache-Control": "private, no-store"}
ANON_TOKEN_TTL_S = 300  # an unknown shopper asks again soon: their segment may appear
SEGMENT_TOKEN_BUDGET_S = 0.05


def _params(request: Request) -> tuple[str, RoutePolicy, int]:
    q = request.query_params
    unknown = set(q) - {"route", "k", "user"}
    if unknown:
        raise BadRequest(f"unknown query parameters {sorted(unknown)}", field=sorted(unknown)[0])
    try:
        route = normalize_slug(q.get("route", "home"), "route")
    except KeyPartError as exc:
        raise BadRequest(str(exc), field="route") from exc
    policy = DEFAULT_ROUTES.get(route, RoutePolicy(route))
    raw_k = q.get("k")
    if raw_k is None:
        return route, policy, policy.k
    if not raw_k.isdigit() or not 1 <= int(raw_k) <= 100:
        raise BadRequest("k must be an integer from 1 to 100", field="k")
    return route, policy, int(raw_k)


def _strategy(assigned: dict[str, tuple[Experiment, int]], route: str) -> tuple[Strategy, str]:
    """The ranking of the assigned variations; as at the edge (``edge.assign.routing``), the
    first experiment in config order (by key) wins each field."""
    weights: dict[str, float] = {}
    list_variant = "control"
    for key in sorted(assigned):
        exp, index = assigned[key]
        variation = exp.variations[index]
        for name, w in (variation.origin_weights or variation.weights).items():
            weights.setdefault(name, w)
        if list_variant == "control":
            list_variant = variation.list_variant
    if not weights:  # most answers: the route's own strategy, built once per route
        return _route_strategy(route), list_variant
    return Strategy.from_weights(weights, route), list_variant


@functools.lru_cache(maxsize=64)
def _route_strategy(route: str) -> Strategy:
    return Strategy.from_weights({}, route)


def _labels(item: str, inputs: Inputs | None, snap: Snapshot) -> dict[str, Any]:
    """The item's labels for the answer: the catalog entry ranking read, else a list's."""
    entry = inputs.catalog.get(item) if inputs is not None else None
    if entry is not None:
        if not (entry.name or entry.image_url):
            return {}
        return labels_to_json(fit_name(entry.name), fit_image_url(entry.image_url), entry.price)
    li: ListItem | None
    if inputs is not None:
        li = inputs.segment.index.get(item) or inputs.popular.index.get(item)
    else:
        li = snap.popular_view.index.get(item)
    if li is None or not (li.name or li.image_url):
        return {}
    return labels_to_json(li.name, li.image_url, li.price)


def _body(
    route: str,
    items: list[Scored],
    variants: dict[str, str],
    degraded: bool,
    labels: Callable[[str], dict[str, Any]],
) -> bytes:
    doc: dict[str, Any] = {
        "v": 1,
        "route": route,
        "items": [
            {"item": s.item, "score": s.score, "reason": s.reason, **labels(s.item)} for s in items
        ],
        "variants": variants,
        "degraded": degraded,
    }
    return orjson.dumps(doc)


def _rules(snap: Snapshot, route: str, hseg: str, now_s: float) -> tuple[MerchRule, ...]:
    return active_rules(snap.rules, route=route, hseg=hseg, now_ms=int(now_s * 1000))


def _popular(snap: Snapshot, route: str, k: int, cap: int, now_s: float) -> list[Scored]:
    """The non-personal rail (opted out, degraded): the popular list, rules applied."""
    rules = _rules(snap, route, ANON_HSEG, now_s)
    ranked = [
        Scored(li.item, li.score, "popular", li.category)
        for li in (snap.popular.items if snap.popular is not None else ())
        if li.in_stock and li.item not in snap.mask
    ]
    return merchandise(diversify(ranked, pool_size(k, rules), cap), rules, k, snap.mask)


def _cookies(state: AppState, feats: Features, inputs: Inputs, now_s: float) -> list[str]:
    s = state.settings
    ttl = s.segment_token_ttl_s
    token = sign_segment(Hseg(feats.hseg), int(now_s) + ttl, s.segment_keys)
    cats = sorted(feats.affinity, key=lambda c: -feats.affinity[c])
    durable = [
        item
        for item in sorted(feats.bought, key=lambda i: -feats.bought[i][1])
        if (entry := inputs.catalog.get(item)) is not None and entry.durable
    ]
    ctx = ContextCookie(tuple(cats), tuple(feats.cart), tuple(durable), int(now_s))
    return [
        SEGMENT_COOKIE.set_cookie(token, max_age_s=ttl),
        CONTEXT_COOKIE.set_cookie(encode_context(ctx, s.context_keys)),
    ]


def _respond(body: bytes, cookies: list[str]) -> Response:
    response = Response(body, media_type="application/json", headers=NO_STORE)
    for c in cookies:
        response.headers.append("set-cookie", c)
    return response


async def _personal(
    state: AppState, sid: str, route: str, policy: RoutePolicy, *, k: int, now_s: float
) -> tuple[list[Scored], dict[str, str], list[str], Inputs | None]:
    now_ms = int(now_s * 1000)
    snap = state.snapshot.current
    feats = await load_features(state, sid, now_ms)
    unit = ab_unit(sid, feats)
    mark = holdout_variant(snap.holdout, unit)
    if mark.get(HOLDOUT_KEY) == HOLDOUT_ARMS[0]:  # the global holdout: nothing personal
        return _popular(snap, route, k, policy.category_cap, now_s), mark, [], None
    assigned = assign_all(snap.experiments, unit, route=route, hseg=feats.hseg, now_ms=now_ms)
    strategy, list_variant = _strategy(assigned, route)
    inputs = await load_inputs(state, feats, list_variant, snap, now_ms)
    started = time.perf_counter()
    rules = _rules(snap, route, feats.hseg, now_s)
    pool = pool_size(k, rules)
    if route == "buy-again":
        items = buy_again(inputs, pool, policy.category_cap)
    else:
        items = rank(inputs, strategy, pool, policy.category_cap)
    if rules:  # without rules merchandising is the cut to k: no copies, no frozenset
        items = merchandise(items, rules, k, inputs.mask | frozenset(feats.cart))
    else:
        items = items[:k]
    state.metrics.model_seconds.observe(time.perf_counter() - started)
    variants = {key: exp.variations[i].name for key, (exp, i) in assigned.items()}
    return items, {**variants, **mark}, _cookies(state, feats, inputs, now_s), inputs


def ab_unit(sid: str, feats: Features) -> str:
    """Whose hash assigns the variants: the anonymous id is the A/B unit, so a signed-in
    customer (``?user=`` with their own id) is assigned by the anonymous id they signed in
    from (the edge keeps assigning that browser by its cookie): variants do not move at
    login. A customer never seen signing in is their own unit."""
    return feats.ab if feats.ab and not is_shopper_id(sid) else sid


async def recommendations(request: Request) -> Response:
    """The full per-user answer (see the module docstring)."""
    state = get_state(request)
    started = time.perf_counter()
    route, policy, k = _params(request)
    budget_s = (state.settings.guardrail_latency_ms or policy.origin_budget_ms) / 1000
    shopper = identify(request, state.settings)
    now_s = state.clock()
    snap = state.snapshot.current
    popular_labels = functools.partial(_labels, inputs=None, snap=snap)
    if shopper.optout:
        body = _body(
            route, _popular(snap, route, k, policy.category_cap, now_s), {}, False, popular_labels
        )
        return _respond(body, [])
    sid = shopper.sid or new_shopper_id()
    new_cookie = [] if shopper.sid else [SHOPPER_COOKIE.set_cookie(sid)]
    try:
        items, variants, cookies, inputs = await _personal(
            state, sid, route, policy, k=k, now_s=now_s
        )
    except StoreUnavailable:
        reason = "redis"
    except Exception:  # a shopper never sees a 500: log it, answer from memory
        LOG.exception("recommendation failed; answering degraded")
        reason = "error"
    else:
        labels = functools.partial(_labels, inputs=inputs, snap=snap)
        body = _body(route, items, variants, False, labels)
        slow = time.perf_counter() - started > budget_s
        state.guard.record(variants, slow=slow, degraded=False)
        return _respond(body, new_cookie + cookies)
    state.metrics.degraded.labels(reason).inc()
    now_ms = int(now_s * 1000)
    mark = holdout_variant(snap.holdout, sid)
    assigned = assign_all(snap.experiments, sid, route=route, hseg=ANON_HSEG, now_ms=now_ms)
    variants = {key: exp.variations[i].name for key, (exp, i) in assigned.items()}
    variants = mark if mark.get(HOLDOUT_KEY) == HOLDOUT_ARMS[0] else {**variants, **mark}
    popular = _popular(snap, route, k, policy.category_cap, now_s)
    body = _body(route, popular, variants, True, popular_labels)
    state.guard.record(variants, slow=time.perf_counter() - started > budget_s, degraded=True)
    return _respond(body, new_cookie)


async def segment_token(request: Request) -> Response:
    """A fresh segment cookie for the shopper, within a small budget (503 when over it)."""
    state = get_state(request)
    unknown = set(request.query_params) - {"user"}
    if unknown:
        raise BadRequest(f"unknown query parameters {sorted(unknown)}", field=sorted(unknown)[0])
    shopper = identify(request, state.settings)
    if shopper.optout:
        return Response(status_code=204, headers=NO_STORE)
    if shopper.sid is None:
        raise BadRequest(f"no shopper id: send the {SHOPPER_COOKIE.name} cookie", field="cookie")
    budget = min(SEGMENT_TOKEN_BUDGET_S, state.store.budget_s)
    raw = await state.store.run(
        "segment_token",
        state.store.client.hget(state.keys.shopper(shopper.sid), "hseg"),
        budget_s=budget,
    )
    hseg = raw.decode() if raw else ANON_HSEG
    # Only a segment the registry names: one stored under keys that were since replaced (a
    # restarted stack, a rotated segment key) would be unknown to every edge for a day.
    known = hseg != ANON_HSEG and hseg in state.snapshot.current.segments
    ttl = state.settings.segment_token_ttl_s if known else ANON_TOKEN_TTL_S
    expires = int(state.clock()) + ttl
    token = sign_segment(Hseg(hseg if known else ANON_HSEG), expires, state.settings.segment_keys)
    body = orjson.dumps({"v": 1, "token": token, "expires_at_s": expires})
    return _respond(body, [SEGMENT_COOKIE.set_cookie(token, max_age_s=ttl)])


def hot_routes() -> dict[str, Endpoint]:
    """The GETs the app answers before its routing stack (``origin.app.OriginApp``)."""
    return {"/v1/recommendations": recommendations}


def routes() -> list[BaseRoute]:
    """Shopper-facing routes."""
    return [
        Route("/v1/recommendations", recommendations, methods=["GET"]),
        Route("/v1/segment-token", segment_token, methods=["GET"]),
    ]
