"""Request normalization: only bounded values reach a key."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.request import (
    RequestParts,
    device_class,
    parse_query,
    pick_locale,
    rail_route,
    requested_k,
)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/p13n/v1/rail/home", "home"),
        ("/p13n/v1/rail/Home/", "home"),
        ("/p13n/v1/rail/pdp-similar", "pdp-similar"),
        ("/p13n/v1/rail/", None),
        ("/p13n/v1/rail/../admin", None),
        ("/p13n/v1/rail/a/b", None),
        ("/p13n/v1/rails/home", None),
        ("/account", None),
        ("/p13n/v1/rail/" + "x" * 41, None),
        ("/p13n/v1/rail/abcdefghijklmnopqrstuv", None),  # shaped like a shopper id
    ],
)
def test_rail_route(path: str, route: str | None) -> None:
    assert rail_route(path) == route


@pytest.mark.parametrize(
    ("headers", "device"),
    [
        ({}, "desktop"),
        ({"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}, "desktop"),
        ({"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Mobile/15E148"}, "mobile"),
        ({"sec-ch-ua-mobile": "?1"}, "mobile"),
        ({"user-agent": "Mozilla/5.0 (iPad; CPU OS 18_0)"}, "tablet"),
        ({"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}, "bot"),
    ],
)
def test_device_class(headers: dict[str, str], device: str) -> None:
    assert device_class(headers) == device


@pytest.mark.parametrize(
    ("accept", "locale"),
    [
        (None, "en-us"),
        ("de-DE,de;q=0.9,en;q=0.8", "de-de"),
        ("fr-CA,fr;q=0.9", "fr-fr"),
        ("ja-JP", "en-us"),
        ("de;q=0, fr;q=0.5", "fr-fr"),
        ("x" * 300, "en-us"),
        ("de-DE;q=abc", "en-us"),
    ],
)
def test_pick_locale(accept: str | None, locale: str) -> None:
    assert pick_locale(accept, ("en-us", "de-de", "fr-fr")) == locale


@pytest.mark.parametrize(
    ("query", "k"),
    [
        ({}, 12),
        ({"k": "5"}, 5),
        ({"k": "0"}, 1),
        ({"k": "999"}, 100),
        ({"k": "x"}, 12),
        ({"k": "\u00b2"}, 12),  # a digit to str.isdigit(), not to int()
        ({"k": "\u0663"}, 12),  # Arabic-Indic three
        ({"k": "9" * 5000}, 12),
    ],
)
def test_requested_k(query: dict[str, str], k: int) -> None:
    assert requested_k(query, 12) == k


def test_from_http_lowercases_headers_and_parses_cookies_and_query() -> None:
    p = RequestParts.from_http("home", {"Cookie": "a=1; b=2", "Sec-GPC": "1"}, "k=3&x=&k=4")
    assert p.cookies == {"a": "1", "b": "2"}
    assert p.headers["sec-gpc"] == "1"
    assert p.query == {"k": "4", "x": ""}
    assert p.with_cookie("c", "3").cookies == {"a": "1", "b": "2", "c": "3"}


@given(st.text(alphabet="ak=&%2F+b;x \u00e9", max_size=40))
def test_parse_query_reads_like_parse_qsl(query: str) -> None:
    assert parse_query(query) == dict(parse_qsl(query, keep_blank_values=True))


def test_parse_query_reads_only_the_first_2_kb() -> None:
    assert parse_query("k=5&" + "x" * 3000 + "&k=9") == {"k": "5", "x" * 2044: ""}


def test_lowercase_names_skips_the_copy_only_when_told() -> None:
    headers = {"Cookie": "p13n_sid=a", "cookie": "p13n_sid=b"}
    assert RequestParts.from_http("home", headers).cookies == {"p13n_sid": "b"}
    lower = {"cookie": "p13n_sid=c"}
    assert RequestParts.from_http("home", lower, lowercase_names=True).headers is lower
