"""The parts of a shopper request the decision core reads, and how they are normalized.

    >>> rail_route("/p13n/v1/rail/Home")
    'home'
    >>> rail_route("/p13n/v1/rail/../admin") is None      # not a rail: goes to the origin
    True
    >>> device_class({"sec-ch-ua-mobile": "?1"})
    'mobile'
    >>> pick_locale("de-DE,de;q=0.9,en;q=0.8", ("en-us", "de-de"))
    'de-de'

Only a bounded set of values reaches a cache key: an allow-listed locale, one of four device
classes, a validated route slug. Anything else falls back to a default, never an error.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import parse_qsl

from cache_keys.tokens import is_shopper_id
from cache_keys.wire import parse_cookie_header

__all__ = [
    "RAIL_PREFIX",
    "REQUEST_HEADERS",
    "RequestParts",
    "current_trace",
    "device_class",
    "parse_query",
    "pick_locale",
    "rail_route",
    "requested_k",
    "set_trace",
]

RAIL_PREFIX = "/p13n/v1/rail/"
MAX_K = 100
_ROUTE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_BOT_RE = re.compile(r"bot|crawl|spider|slurp|facebookexternalhit|headless", re.IGNORECASE)
_TABLET_RE = re.compile(r"ipad|tablet|kindle|silk|playbook", re.IGNORECASE)
_MOBILE_RE = re.compile(r"mobi|iphone|android", re.IGNORECASE)


_EMPTY: Mapping[str, str] = MappingProxyType({})
# Every request header the rail flow reads (lower-case): the Worker copies only these across
# the JS/Python boundary (a test runs the flow on a recording mapping to keep this complete).
REQUEST_HEADERS = (
    "cookie",
    "accept-language",
    "user-agent",
    "sec-ch-ua-mobile",
    "sec-gpc",
    "traceparent",
)


class RequestParts(NamedTuple):
    """A rail request as plain data: route, cookies, lower-cased headers, query (a named
    tuple: one is built per request, the cheapest immutable record in CPython and Pyodide)."""

    route: str
    cookies: Mapping[str, str] = _EMPTY
    headers: Mapping[str, str] = _EMPTY
    query: Mapping[str, str] = _EMPTY

    @classmethod
    def from_http(
        cls,
        route: str,
        headers: Mapping[str, str],
        query_string: str = "",
        *,
        lowercase_names: bool = False,
    ) -> RequestParts:
        """Build from raw headers and the raw query string. Header names may be in any case;
        ``lowercase_names=True`` says they already are lower-case (ASGI servers hand them over
        so) and skips the copy."""
        lower = headers if lowercase_names else {k.lower(): v for k, v in headers.items()}
        return cls(
            route, parse_cookie_header(lower.get("cookie")), lower, parse_query(query_string)
        )

    def with_cookie(self, name: str, value: str) -> RequestParts:
        """The same request as if it had carried cookie ``name=value``."""
        return RequestParts(self.route, {**self.cookies, name: value}, self.headers, self.query)


MAX_QUERY = 2048


def parse_query(query_string: str) -> dict[str, str]:
    """``k=12&x=`` -> ``{"k": "12", "x": ""}`` as ``parse_qsl`` reads it (last value wins,
    blank values kept), for the first 2 KB; plain queries skip the percent-decoding.

    >>> parse_query("k=12&seg=a%2Fb&k=7&flag")
    {'k': '7', 'seg': 'a/b', 'flag': ''}
    """
    query_string = query_string[:MAX_QUERY]
    if "%" in query_string or "+" in query_string:
        return dict(parse_qsl(query_string, keep_blank_values=True))
    out = {}
    for pair in query_string.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            out[name] = value
    return out


# W3C trace context (version 00 shape): forwarded on origin subrequests and recorded on
# exposure events, so one id follows a shopper action from the edge through the stream.
_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("p13n_traceparent", default="")


def set_trace(headers: Mapping[str, str]) -> str:
    """Take the request's ``traceparent`` (lower-cased header names) as the current trace
    when well-formed, else none; a context variable, so background work started by the
    request carries it too. Returns it."""
    value = headers.get("traceparent")
    trace = value if value and _TRACEPARENT_RE.fullmatch(value) else ""
    if trace or _TRACE.get():  # (a request's task starts with none: skip the write then)
        _TRACE.set(trace)
    return trace


def current_trace() -> str:
    """The trace set for the request being answered ('' for none)."""
    return _TRACE.get()


def rail_route(path: str) -> str | None:
    """The route slug of a rail path, lower-cased; None for any other path."""
    if not path.startswith(RAIL_PREFIX):
        return None
    route = _ROUTES.get(path)
    if route is None:
        route = path[len(RAIL_PREFIX) :].rstrip("/").lower()
        if not _ROUTE_RE.fullmatch(route) or (len(route) == 22 and is_shopper_id(route)):
            return None  # a slug shaped like a shopper id could never be keyed or tagged
        if len(_ROUTES) >= _MEMO_MAX:
            _ROUTES.clear()
        _ROUTES[path] = route  # only valid slugs: made-up paths cannot fill the memo
    return route


# Header values repeat across shoppers (a few hundred browsers and languages), so the parsed
# answers are memoized; the dicts are cleared if they ever grow past the cap.
_MEMO_MAX = 4096
_DEVICES: dict[tuple[str, str], str] = {}
_LOCALES: dict[tuple[str, tuple[str, ...]], str] = {}
_ROUTES: dict[str, str] = {}  # rail path -> its validated slug (a few routes, every request)


def _device(ua: str, mobile_hint: str) -> str:
    if _BOT_RE.search(ua):
        return "bot"
    if _TABLET_RE.search(ua):
        return "tablet"
    if mobile_hint == "?1" or _MOBILE_RE.search(ua):
        return "mobile"
    return "desktop"


def device_class(headers: Mapping[str, str]) -> str:
    """``bot``, ``tablet``, ``mobile`` or ``desktop`` from client hints and the User-Agent."""
    key = (headers.get("user-agent", "")[:512], headers.get("sec-ch-ua-mobile", ""))
    device = _DEVICES.get(key)
    if device is None:
        if len(_DEVICES) >= _MEMO_MAX:
            _DEVICES.clear()
        device = _DEVICES[key] = _device(*key)
    return device


def pick_locale(accept_language: str | None, allowed: tuple[str, ...]) -> str:
    """The first allowed locale the shopper accepts (exact, then by language); else the default."""
    if not accept_language:
        return allowed[0]
    key = (accept_language[:256], allowed)
    locale = _LOCALES.get(key)
    if locale is None:
        if len(_LOCALES) >= _MEMO_MAX:
            _LOCALES.clear()
        locale = _LOCALES[key] = _pick_locale(key[0], allowed)
    return locale


def _pick_locale(accept_language: str, allowed: tuple[str, ...]) -> str:
    wanted: list[tuple[float, int, str]] = []
    for part in accept_language.split(",")[:8]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            wanted.append((-q, len(wanted), tag.strip().lower().replace("_", "-")))
    wanted.sort()
    for _, _, tag in wanted:
        if tag in allowed:
            return tag
        for locale in allowed:
            if locale.split("-")[0] == tag.split("-")[0]:
                return locale
    return allowed[0]


def requested_k(query: Mapping[str, str], default: int) -> int:
    """``?k=`` clamped to 1..100; the route's own ``k`` when absent or malformed."""
    raw = query.get("k", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:  # "²" is a digit to isdigit()
        return default
    return max(1, min(int(raw), MAX_K))
