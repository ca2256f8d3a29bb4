"""Storage policy of the shared HTTP cache: what of an origin answer is stored, how a 304
freshens it, and which collapsed answers a waiter may share.

Every stored response records the (soft, hard) generation of each of its Cache-Tag tags and
of ``*`` in the edge config current when it was stored; a later config with a higher hard
generation makes it a miss, a higher soft one makes it stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from cache_keys.wire import ALL_TAG
from edge.proxy.cachecontrol import ResponseDirectives
from edge.proxy.freshness import Timing, freshness_lifetime, http_date, parse_age, storable
from edge.proxy.store import StoredResponse, selecting_values, vary_names
from edge.proxy.upstream import UpstreamResponse

__all__ = [
    "Fetched",
    "Generations",
    "collapse_key",
    "freshened",
    "generations_of",
    "shareable",
    "stored_entry",
]

Generations = Mapping[str, tuple[int, int]]


class Fetched(NamedTuple):
    """An origin answer, and what a shared cache may store of it as its request asked for it
    (None: nothing; the answer is for that request alone)."""

    resp: UpstreamResponse
    entry: StoredResponse | None


def generations_of(current: Generations, tags: frozenset[str]) -> dict[str, tuple[int, int]]:
    """The current generations of ``*`` and ``tags``, recorded with a stored response."""
    return {t: current.get(t, (0, 0)) for t in (ALL_TAG, *tags)}


def stored_entry(
    headers: Mapping[str, str], resp: UpstreamResponse, current: Generations
) -> StoredResponse | None:
    """What a shared cache stores of ``resp`` to a GET with request ``headers``; None when
    RFC 9111 says it may not (or the answer has no freshness lifetime)."""
    d = ResponseDirectives.from_headers(
        resp.header_values("cache-control"), resp.header_values("cdn-cache-control")
    )
    date = http_date(resp.header("date"))
    lifetime = freshness_lifetime(d, date, joined(resp.header_values("expires")))
    vary = joined(resp.header_values("vary"))
    ok, _ = storable(
        method="GET",
        status=resp.status,
        request_cache_control=headers.get("cache-control"),
        request_has_authorization="authorization" in headers,
        directives=d,
        vary=vary,
        has_set_cookie=resp.header("set-cookie") is not None,
        lifetime=lifetime,
    )
    if not ok or lifetime is None:
        return None
    tags = frozenset(
        t.strip().lower()
        for v in resp.header_values("cache-tag")
        for t in v.split(",")
        if t.strip()
    )
    return StoredResponse(
        status=resp.status,
        headers=resp.headers,
        body=resp.body,
        timing=Timing(
            resp.request_time,
            resp.response_time,
            date,
            parse_age(resp.header_values("age")) or 0,
        ),
        directives=d,
        lifetime=lifetime,
        vary=selecting_values(vary_names(vary), headers),
        tags=tags,
        generations=generations_of(current, tags),
    )


def joined(lines: list[str]) -> str | None:
    """A field's lines as one value (RFC 9110 §5.3), None when absent: ``Vary`` lines
    ``["Accept", "*"]`` -> ``"Accept, *"``; several ``Expires`` lines join into a value that
    is no HTTP-date, so the response is stale (RFC 9111 §5.3)."""
    return ", ".join(lines) if lines else None


def freshened(
    stored: StoredResponse, resp: UpstreamResponse, current: Generations
) -> StoredResponse:
    """RFC 9111 §4.3.4: the stored response with its headers updated from a 304, its age
    restarted."""
    updates = {k for k, _ in resp.headers}
    merged = [(k, v) for k, v in stored.headers if k not in updates] + resp.headers
    d = ResponseDirectives.from_headers(
        [v for k, v in merged if k == "cache-control"],
        [v for k, v in merged if k == "cdn-cache-control"],
    )
    date = http_date(next((v for k, v in merged if k == "date"), None))
    lifetime = freshness_lifetime(d, date, joined([v for k, v in merged if k == "expires"]))
    return StoredResponse(
        status=stored.status,
        headers=merged,
        body=stored.body,
        timing=Timing(resp.request_time, resp.response_time, date, 0),
        directives=d,
        lifetime=lifetime if lifetime is not None else 0.0,
        vary=stored.vary,
        tags=stored.tags,
        generations=generations_of(current, stored.tags),
    )


def collapse_key(primary: str, stored: StoredResponse | None) -> str:
    """Misses of a URL collapse together; validations only with others of the same stored
    variant (a 304 speaks for the validators sent, which are that variant's)."""
    if stored is None:
        return primary
    return f"{primary} {stored.vary!r}"


def shareable(fetched: Fetched, headers: Mapping[str, str], stored: StoredResponse | None) -> bool:
    """Whether a waiter may use another request's answer: what a shared cache could have
    served it from storage."""
    if stored is not None and fetched.resp.status == 304:
        return True  # validated the very variant this waiter selected (the key says so)
    entry = fetched.entry
    if entry is None:
        return False  # not storable as its own request asked: that request's alone
    return entry.vary == selecting_values((name for name, _ in entry.vary), headers)
