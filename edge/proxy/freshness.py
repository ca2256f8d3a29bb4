"""What a shared cache may store, and how fresh a stored response is (RFC 9111, RFC 5861).

Pure functions over plain values and an explicit ``now``; no I/O.

Age (RFC 9111 §4.2.3)::

    apparent_age          = max(0, response_time - date)
    corrected_age_value   = age_header + (response_time - request_time)
    corrected_initial_age = max(apparent_age, corrected_age_value)
    current_age           = corrected_initial_age + (now - response_time)

Freshness lifetime for a shared cache: the targeted field's ``max-age`` (RFC 9213), else
``s-maxage``, else ``max-age``, else ``Expires - Date``. No heuristic freshness: a response
without explicit freshness information is not stored.
"""

from __future__ import annotations

import calendar
import enum
import re
import time
from dataclasses import dataclass, field

from edge.proxy.cachecontrol import ResponseDirectives, parse_directives

__all__ = [
    "CACHEABLE_STATUSES",
    "Freshness",
    "Timing",
    "classify",
    "current_age",
    "freshness_lifetime",
    "http_date",
    "parse_age",
    "storable",
    "usable_on_error",
]

# Final statuses a shared cache may store when explicit freshness is given (RFC 9110 §15.1
# "heuristically cacheable" statuses; we store them only with explicit freshness).
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})


_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = frozenset(d.lower() for d in calendar.day_abbr)
_LONG_DAYS = frozenset(d.lower() for d in calendar.day_name)
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
# RFC 9110 §5.6.7: IMF-fixdate, and the obsolete rfc850-date and asctime-date. Exactly these
# shapes (single spaces, two-digit hours, GMT): a bad zone, a two-digit year in IMF form, a
# missing comma, dashes or periods are all invalid. Names match case-insensitively.
_IMF = re.compile(rf"([A-Za-z]{{3}}), (\d{{2}}) ([A-Za-z]{{3}}) (\d{{4}}) {_TIME} GMT", re.I)
_RFC850 = re.compile(rf"([A-Za-z]{{6,9}}), (\d{{2}})-([A-Za-z]{{3}})-(\d{{2}}) {_TIME} GMT", re.I)
_ASCTIME = re.compile(rf"([A-Za-z]{{3}}) ([A-Za-z]{{3}}) ([ \d]\d) {_TIME} (\d{{4}})")


def _two_digit_year(yy: int) -> int:
    """RFC 9110 §5.6.7: more than 50 years ahead means the most recent such past year."""
    now = time.gmtime().tm_year
    year = now - now % 100 + yy
    return year - 100 if year > now + 50 else year


def _parts(value: str) -> tuple[str, int, str, int, str, str, str] | None:
    """(weekday, day, month, year, hh, mm, ss) of a valid HTTP-date's shape."""
    if m := _IMF.fullmatch(value):
        wd, day, mon, year, hh, mm, ss = m.groups()
        return (wd, int(day), mon, int(year), hh, mm, ss) if wd.lower() in _DAYS else None
    if m := _RFC850.fullmatch(value):
        wd, day, mon, yy, hh, mm, ss = m.groups()
        if wd.lower() not in _LONG_DAYS:
            return None
        return (wd[:3], int(day), mon, _two_digit_year(int(yy)), hh, mm, ss)
    if m := _ASCTIME.fullmatch(value):
        wd, mon, day, hh, mm, ss, year = m.groups()
        return (wd, int(day), mon, int(year), hh, mm, ss) if wd.lower() in _DAYS else None
    return None


def http_date(value: str | None) -> float | None:
    """An HTTP-date as epoch seconds; None when absent or invalid (RFC 9110 §5.6.7).

    >>> http_date("Thu, 01 Jan 1970 00:01:00 GMT")
    60.0
    >>> http_date("Thu, 01 Jan 70 00:01:00 GMT") is None  # two-digit year in IMF form
    True
    """
    parts = _parts(value.strip()) if value else None
    if parts is None:
        return None
    _, day, mon, year, hh, mm, ss = parts
    month = _MONTHS.get(mon.lower())
    h, m, sec = int(hh), int(mm), int(ss)
    if month is None or not 1 <= day <= 31 or h > 23 or m > 59 or sec > 60:
        return None
    if day > calendar.monthrange(year, month)[1]:
        return None
    return float(calendar.timegm((year, month, day, h, m, sec, 0, 0, 0)))


_AGE_MAX = 2**31


def parse_age(lines: list[str]) -> int | None:
    """The Age of a response (RFC 9111 §5.1): the first member of the first line, as
    delta-seconds (parameters dropped); None when absent or invalid (then ignored).

        >>> parse_age(["7200, 0"]), parse_age(["0", "7200"]), parse_age(["-1"])
        (7200, 0, None)
    """
    if not lines:
        return None
    first = lines[0].split(",", 1)[0].split(";", 1)[0].strip()
    return min(int(first), _AGE_MAX) if first.isdigit() and first.isascii() else None


@dataclass(frozen=True, slots=True)
class Timing:
    """When the cache sent the request and got the response, plus the response's dates."""

    request_time: float
    response_time: float
    date: float | None
    age: int
    # RFC 9111 §4.2.3 corrected_initial_age: fixed once stored, so computed once here
    # rather than on every hit (``current_age`` is on the hit path).
    corrected_initial_age: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        date = self.date if self.date is not None else self.response_time
        apparent = max(0.0, self.response_time - date)
        corrected_age_value = self.age + (self.response_time - self.request_time)
        object.__setattr__(self, "corrected_initial_age", max(apparent, corrected_age_value))


def current_age(t: Timing, now: float) -> float:
    """RFC 9111 §4.2.3 current age in seconds."""
    return t.corrected_initial_age + (now - t.response_time)


def freshness_lifetime(
    d: ResponseDirectives, date: float | None, expires: str | None
) -> float | None:
    """Freshness lifetime in seconds, or None when the response gives none."""
    if d.targeted:
        for name in ("s-maxage", "max-age"):
            if (v := d.seconds(name)) is not None:
                return float(v)
        return None
    for name in ("s-maxage", "max-age"):
        if d.has(name):
            v = d.seconds(name)
            return float(v) if v is not None else 0.0  # invalid value: treat as stale
    if expires is not None:
        exp = http_date(expires)
        if exp is None:
            return 0.0  # an invalid Expires means "already expired" (RFC 9111 §5.3)
        return max(0.0, exp - (date if date is not None else exp))
    return None


def storable(
    *,
    method: str,
    status: int,
    request_cache_control: str | None,
    request_has_authorization: bool,
    directives: ResponseDirectives,
    vary: str | None,
    has_set_cookie: bool,
    lifetime: float | None,
) -> tuple[bool, str]:
    """Whether a shared cache may store this response, with the reason when not."""
    reason = ""
    if method != "GET":
        reason = "method"
    elif status not in CACHEABLE_STATUSES:
        reason = "status"
    elif "no-store" in parse_directives(request_cache_control) or directives.no_store:
        reason = "no-store"
    elif directives.private:
        reason = "private"
    elif request_has_authorization and not (
        directives.has("public") or directives.has("s-maxage") or directives.must_revalidate
    ):
        reason = "authorization"  # RFC 9111 §3.5
    elif vary is not None and "*" in {v.strip() for v in vary.split(",")}:
        reason = "vary-star"
    elif has_set_cookie:
        reason = "set-cookie"  # never share one shopper's cookie with another
    elif lifetime is None:
        reason = "no-freshness"
    return (reason == "", reason)


class Freshness(enum.Enum):
    """How a stored response may be used now."""

    FRESH = "fresh"  # serve it
    STALE_REVALIDATE = "stale-while-revalidate"  # serve it, revalidate in the background
    STALE = (
        "stale"  # validate or refetch first; serve it only if the origin fails (usable_on_error)
    )


def classify(
    d: ResponseDirectives, lifetime: float, age: float, *, request_cache_control: str | None
) -> Freshness:
    """Freshness of a stored response at ``age``, honouring request directives."""
    req = parse_directives(request_cache_control)
    if d.no_cache or "no-cache" in req or req.get("max-age") == "0":
        return Freshness.STALE
    if age < lifetime:
        return Freshness.FRESH
    swr = d.seconds("stale-while-revalidate")
    if swr is not None and not d.must_revalidate and age < lifetime + swr:
        return Freshness.STALE_REVALIDATE
    return Freshness.STALE


def usable_on_error(d: ResponseDirectives, lifetime: float, age: float) -> bool:
    """Whether stale-if-error (RFC 5861 §4) lets this response answer an origin failure."""
    sie = d.seconds("stale-if-error")
    return sie is not None and not d.must_revalidate and age < lifetime + sie
