"""``decide``: from a rail request, the edge config and the time, the plan for answering it.

Pure: no I/O, the clock and the id generator passed in, so the Worker and the self-hosted
proxy run the same decisions and tests tick a fake clock. The plan says which key to look up,
which tags to store under, which list to fetch on a miss and from where, whether the route
goes to the origin first (fully personal), whether to ask for a fresh segment cookie, and
which cookies the per-shopper response sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from cache_keys.keys import CacheKey, build_key, tag
from cache_keys.segments import Hseg
from cache_keys.tokens import new_shopper_id
from cache_keys.wire import (
    ALL_TAG,
    SEGMENT_COOKIE,
    SHOPPER_COOKIE,
    EdgeConfig,
    RoutePolicy,
    SegmentGrant,
)
from edge.assign import HOLDOUT, Assignment, experiment_table, holdout, routing
from edge.identity import ANON, Identity, resolve_identity
from edge.request import RequestParts, device_class, pick_locale, requested_k
from edge.settings import EdgeSettings

__all__ = ["Plan", "decide", "key_generation", "serves_route", "with_segment_grant"]

RECOMMENDATIONS_PATH = "/v1/recommendations"
SEGMENT_TOKEN_PATH = "/v1/segment-token"  # noqa: S105 (a path, not a secret)


class Plan(NamedTuple):
    """Everything the I/O layer needs to answer one rail request (a named tuple: one is
    built per request, and tuples are the cheapest immutable records in CPython and Pyodide)."""

    route: str
    policy: RoutePolicy
    k: int
    identity: Identity
    assignments: tuple[Assignment, ...]
    list_variant: str
    weights: Mapping[str, float]
    origin: str
    list_url: str
    personal_url: str | None
    key: CacheKey
    locale: str
    device: str
    set_cookies: tuple[str, ...]

    @property
    def variants(self) -> dict[str, str]:
        """Experiment key -> variation name, as answered to the shopper."""
        return {a.experiment: a.variation.name for a in self.assignments}

    @property
    def experiment_keys(self) -> tuple[str, ...]:
        """The experiments this request is in."""
        return tuple(a.experiment for a in self.assignments)

    @property
    def segment_token_url(self) -> str | None:
        """Where to ask for a fresh segment cookie, when one is needed: never for a shopper id
        this request minted (the origin cannot know it yet: the call would only cost time)."""
        if not self.identity.refresh_segment or self.identity.minted:
            return None
        return self.origin + SEGMENT_TOKEN_PATH

    def origin_cookie_header(self) -> str:
        """The Cookie header for origin subrequests: the shopper's own cookies only."""
        ident = self.identity
        if ident.shopper_id is None:
            return ""
        return f"{SHOPPER_COOKIE.name}={ident.shopper_id}"


_NONE = (0, 0)
_ROUTE_TAGS: dict[str, str] = {}  # route slug -> its tag; routes are a small closed set


def serves_route(config: EdgeConfig, route: str) -> bool:
    """Whether the edge answers this rail: a route the config names (any route while the
    config names none, as the built-in fallback does). Other rails go to the origin like any
    path, so made-up route names cannot fill edge caches or multiply list fetches."""
    return not config.routes or route in config.routes


def key_generation(config: EdgeConfig, route: str) -> int:
    """The generation written into keys: hard purges of ``*`` or the route move every key."""
    route_tag = _ROUTE_TAGS.get(route)
    if route_tag is None:
        if len(_ROUTE_TAGS) >= _KEYS_MAX:
            _ROUTE_TAGS.clear()
        route_tag = _ROUTE_TAGS[route] = tag("route", route)
    gens = config.generations
    return gens.get(ALL_TAG, _NONE)[1] + gens.get(route_tag, _NONE)[1]


# Keys repeat across shoppers (routes x segments x variants x locales x devices), so built
# keys are memoized by their inputs; the dict is cleared if it ever grows past the cap.
_KEYS: dict[tuple[str, Hseg, tuple[tuple[str, int], ...], str, str, int], CacheKey] = {}
_KEYS_MAX = 8192


def _key(memo: tuple[str, Hseg, tuple[tuple[str, int], ...], str, str, int]) -> CacheKey:
    key = _KEYS.get(memo)
    if key is None:
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        route, hseg, variants, locale, device, generation = memo
        key = _KEYS[memo] = build_key(
            route, hseg, dict(variants), locale=locale, device=device, generation=generation
        )
    return key


def _cookies(identity: Identity) -> tuple[str, ...]:
    if identity.minted and identity.shopper_id is not None:
        return (SHOPPER_COOKIE.set_cookie(identity.shopper_id),)
    return ()


def decide(
    parts: RequestParts,
    config: EdgeConfig,
    settings: EdgeSettings,
    now_ms: int,
    mint: Callable[[], str] = new_shopper_id,
) -> Plan:
    """Plan the answer to a rail request (``parts.route`` already validated by ``rail_route``)."""
    route = parts.route
    policy = config.routes.get(route) or RoutePolicy(route=route)
    identity = resolve_identity(parts, settings, now_ms / 1000, mint)
    shopper = identity.shopper_id
    # One walk over the shopper id hashes it for the holdout and every experiment at once.
    table = experiment_table(config.experiments)
    states = table.lanes.states(shopper) if shopper else ()
    arm = holdout(config.holdout, shopper, states)
    if arm is HOLDOUT:  # the global holdout: the anonymous segment's list, no experiment
        identity = identity._replace(hseg=ANON, refresh_segment=False, context=None)
        assignments: tuple[Assignment, ...] = (arm,)
    else:
        assignments = table.assign(states, route, identity.hseg, now_ms) if shopper else ()
        if arm is not None:
            assignments = (*assignments, arm)
    rt = routing(assignments)
    locale = pick_locale(parts.headers.get("accept-language"), settings.locales)
    device = device_class(parts.headers)
    key = _key(
        (
            route,
            identity.hseg,
            tuple((a.experiment, a.variant) for a in assignments),
            locale,
            device,
            key_generation(config, route),
        )
    )
    k = requested_k(parts.query, policy.k)
    origin = rt.origin or settings.origin_url
    # hseg, list variant and route are validated slugs: nothing in these URLs needs quoting.
    list_url = f"{origin}/v1/segments/{identity.hseg}/list?variant={rt.list_variant}"
    personal_url = None
    if policy.personal and not identity.opted_out and arm is not HOLDOUT:
        path = rt.origin_path or RECOMMENDATIONS_PATH
        personal_url = f"{origin}{path}?route={route}&k={k}"
    # positional, in field order (keywords cost twice as much, on every request)
    return Plan(
        route,
        policy,
        k,
        identity,
        assignments,
        rt.list_variant,
        rt.weights,
        origin,
        list_url,
        personal_url,
        key,
        locale,
        device,
        _cookies(identity),
    )


def with_segment_grant(
    plan: Plan,
    parts: RequestParts,
    *,
    grant: SegmentGrant,
    config: EdgeConfig,
    settings: EdgeSettings,
    now_ms: int,
) -> Plan:
    """Re-plan with a segment cookie the origin just granted; unchanged if it does not verify.

    The shopper id of the first plan is kept (a minted one is not minted twice), and the
    response also sets the granted cookie.
    """
    shopper = plan.identity.shopper_id
    if shopper is None:
        return plan
    fresh = decide(
        parts.with_cookie(SEGMENT_COOKIE.name, grant.token).with_cookie(
            SHOPPER_COOKIE.name, shopper
        ),
        config,
        settings,
        now_ms,
    )
    if fresh.identity.segment_expires_s is None:  # forged or expired grant: ignore it
        return plan
    max_age = max(0, min(grant.expires_at_s - now_ms // 1000, SEGMENT_COOKIE.max_age_s))
    cookies = (*plan.set_cookies, SEGMENT_COOKIE.set_cookie(grant.token, max_age_s=max_age))
    identity = Identity(
        shopper_id=shopper,
        minted=plan.identity.minted,
        hseg=fresh.identity.hseg,
        segment_expires_s=fresh.identity.segment_expires_s,
        opted_out=False,
        refresh_segment=False,
        context=fresh.identity.context,
    )
    return fresh._replace(identity=identity, set_cookies=cookies)
