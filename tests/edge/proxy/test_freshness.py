"""RFC 9111 / 5861 / 9213 decisions as pure functions, with explicit times."""

from __future__ import annotations

import pytest

from edge.proxy.cachecontrol import ResponseDirectives, parse_directives
from edge.proxy.freshness import (
    Freshness,
    Timing,
    classify,
    current_age,
    freshness_lifetime,
    storable,
    usable_on_error,
)


def rd(cc: str = "", cdn: str = "") -> ResponseDirectives:
    return ResponseDirectives.from_headers([cc] if cc else [], [cdn] if cdn else [])


def test_parse_directives_quotes_case_and_first_wins() -> None:
    got = parse_directives(['Max-Age=60, no-cache="Set-Cookie, X"', "max-age=5, private"])
    assert got == {"max-age": "60", "no-cache": "Set-Cookie, X", "private": None}


def test_cdn_cache_control_overrides_cache_control() -> None:
    d = rd("no-store", "max-age=120")
    assert d.targeted and not d.no_store
    assert freshness_lifetime(d, None, None) == 120


@pytest.mark.parametrize(
    ("cc", "expires", "date", "want"),
    [
        ("s-maxage=30, max-age=10", None, None, 30),
        ("max-age=10", None, None, 10),
        ("max-age=abc", None, None, 0),
        ("", "Thu, 01 Jan 2026 00:01:00 GMT", 1767225600.0, 60),  # Date = 00:00:00
        ("", "garbage", None, 0),
        ("public", None, None, None),
    ],
)
def test_freshness_lifetime(cc, expires, date, want) -> None:
    assert freshness_lifetime(rd(cc), date, expires) == want


def test_current_age_follows_rfc_9111_4_2_3() -> None:
    t = Timing(request_time=100.0, response_time=102.0, date=95.0, age=3)
    # apparent = 102-95 = 7; corrected_age_value = 3 + 2 = 5; initial = 7; resident = 10
    assert current_age(t, now=112.0) == 17.0


@pytest.mark.parametrize(
    ("kwargs", "ok", "reason"),
    [
        ({}, True, ""),
        ({"method": "POST"}, False, "method"),
        ({"status": 206}, False, "status"),
        ({"status": 500}, False, "status"),
        ({"request_cache_control": "no-store"}, False, "no-store"),
        ({"directives": rd("private, max-age=60")}, False, "private"),
        ({"directives": rd("no-store")}, False, "no-store"),
        ({"request_has_authorization": True}, False, "authorization"),
        ({"request_has_authorization": True, "directives": rd("public, max-age=60")}, True, ""),
        ({"vary": "Accept, *"}, False, "vary-star"),
        ({"has_set_cookie": True}, False, "set-cookie"),
        ({"lifetime": None}, False, "no-freshness"),
    ],
)
def test_storable(kwargs, ok, reason) -> None:
    args = {
        "method": "GET",
        "status": 200,
        "request_cache_control": None,
        "request_has_authorization": False,
        "directives": rd("max-age=60"),
        "vary": None,
        "has_set_cookie": False,
        "lifetime": 60.0,
    }
    args.update(kwargs)
    assert storable(**args) == (ok, reason)


def test_classify_windows() -> None:
    d = rd("max-age=10, stale-while-revalidate=20, stale-if-error=100")
    assert classify(d, 10, 5, request_cache_control=None) is Freshness.FRESH
    assert classify(d, 10, 15, request_cache_control=None) is Freshness.STALE_REVALIDATE
    assert classify(d, 10, 31, request_cache_control=None) is Freshness.STALE
    assert usable_on_error(d, 10, 109) and not usable_on_error(d, 10, 111)


def test_must_revalidate_and_no_cache_forbid_stale() -> None:
    d = rd("max-age=10, must-revalidate, stale-while-revalidate=20, stale-if-error=100")
    assert classify(d, 10, 15, request_cache_control=None) is Freshness.STALE
    assert not usable_on_error(d, 10, 15)
    assert classify(rd("no-cache, max-age=60"), 60, 1, request_cache_control=None) is (
        Freshness.STALE
    )
    assert classify(rd("max-age=60"), 60, 1, request_cache_control="no-cache") is Freshness.STALE


def test_stale_needs_an_explicit_grant() -> None:
    d = rd("max-age=10")
    assert classify(d, 10, 11, request_cache_control=None) is Freshness.STALE
    assert not usable_on_error(d, 10, 11)
