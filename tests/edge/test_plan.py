"""decide(): the plan for one rail request, from plain data and a fixed clock."""

from __future__ import annotations

import pytest

from cache_keys.segments import ANON_HSEG
from cache_keys.tokens import is_shopper_id
from cache_keys.wire import SEGMENT_COOKIE, SHOPPER_COOKIE, SegmentGrant
from edge.plan import decide, key_generation, with_segment_grant
from tests.support.edge import (
    HSEG,
    NOW_MS,
    NOW_S,
    SHOPPER,
    config,
    experiment,
    make_settings,
    parts,
    token,
)

SETTINGS = make_settings(ORIGIN_URL="http://origin.test", LOCALES="en-us,de-de")


def test_key_is_route_segment_variants_locale_device_generation() -> None:
    cfg = config(
        experiments=[experiment(), experiment("banner", routes=["pdp"])],
        generations={"*": [0, 2], "route:home": [1, 3], "route:pdp": [0, 9]},
    )
    p = parts(seg=token(), headers={"accept-language": "de-DE", "sec-ch-ua-mobile": "?1"})
    plan = decide(p, cfg, SETTINGS, NOW_MS)
    assert plan.key.path == f"/__p13n/v1/home/{HSEG}/de-de/mobile/rail-algo.1/g5"
    assert key_generation(cfg, "home") == 5
    assert plan.variants == {"rail-algo": "boost"}
    assert SHOPPER not in plan.key.path


def test_list_url_and_fallback_route_by_variant() -> None:
    exp = experiment(
        variations=[
            {"name": "control"},
            {
                "name": "alt",
                "list_variant": "trending",
                "origin": "http://alt.test:81",
                "origin_path": "/v2/recs",
            },
        ]
    )
    cfg = config(experiments=[exp], routes={"home": {"personal": True, "k": 4}})
    plan = decide(parts(seg=token(), query={"k": "3"}), cfg, SETTINGS, NOW_MS)
    assert plan.list_url == f"http://alt.test:81/v1/segments/{HSEG}/list?variant=trending"
    assert plan.personal_url == "http://alt.test:81/v2/recs?route=home&k=3"
    assert plan.k == 3


def test_unknown_route_gets_the_default_policy_and_no_personal_call() -> None:
    plan = decide(parts("new-rail", seg=token()), config(), SETTINGS, NOW_MS)
    assert plan.policy.route == "new-rail" and plan.policy.max_age_s == 60
    assert plan.personal_url is None
    assert plan.list_url == f"http://origin.test/v1/segments/{HSEG}/list?variant=control"


def test_minted_shopper_gets_exactly_one_cookie() -> None:
    plan = decide(parts(shopper=None), config(), SETTINGS, NOW_MS, mint=lambda: "m" * 22)
    assert plan.set_cookies == (SHOPPER_COOKIE.set_cookie("m" * 22),)
    assert plan.identity.refresh_segment is True
    assert plan.segment_token_url is None  # an id minted now: the origin cannot know it
    known = decide(parts(), config(), SETTINGS, NOW_MS)  # a known shopper, no segment cookie
    assert known.segment_token_url == "http://origin.test/v1/segment-token"
    assert plan.origin_cookie_header() == f"{SHOPPER_COOKIE.name}={'m' * 22}"
    assert is_shopper_id(
        decide(parts(shopper=None), config(), SETTINGS, NOW_MS).identity.shopper_id
    )


def test_known_shopper_with_fresh_segment_sets_no_cookie_and_needs_no_refresh() -> None:
    plan = decide(parts(seg=token()), config(), SETTINGS, NOW_MS)
    assert plan.set_cookies == ()
    assert plan.segment_token_url is None


def test_opted_out_plan_is_anonymous_and_not_personal() -> None:
    cfg = config(experiments=[experiment()], routes={"home": {"personal": True}})
    plan = decide(parts(seg=token(), headers={"sec-gpc": "1"}), cfg, SETTINGS, NOW_MS)
    assert plan.identity.hseg == ANON_HSEG
    assert plan.assignments == () and plan.variants == {}
    assert plan.personal_url is None
    assert plan.set_cookies == ()
    assert plan.segment_token_url is None
    assert plan.origin_cookie_header() == ""


def test_segment_grant_replans_with_the_granted_segment() -> None:
    first = decide(parts(shopper=None), config(), SETTINGS, NOW_MS, mint=lambda: "m" * 22)
    grant = SegmentGrant(token(expires_s=NOW_S + 7200), NOW_S + 7200)
    p = parts(shopper=None)
    plan = with_segment_grant(
        first, p, grant=grant, config=config(), settings=SETTINGS, now_ms=NOW_MS
    )
    assert plan.identity.hseg == HSEG and plan.identity.shopper_id == "m" * 22
    assert plan.key.hseg == HSEG
    assert plan.set_cookies == (
        SHOPPER_COOKIE.set_cookie("m" * 22),
        SEGMENT_COOKIE.set_cookie(grant.token, max_age_s=7200),
    )
    assert plan.identity.refresh_segment is False


@pytest.mark.parametrize("bad", ["1.junk", token(expires_s=NOW_S - 1)])
def test_unverifiable_grant_is_ignored(bad: str) -> None:
    first = decide(parts(), config(), SETTINGS, NOW_MS)
    plan = with_segment_grant(
        first,
        parts(),
        grant=SegmentGrant(bad, NOW_S + 60),
        config=config(),
        settings=SETTINGS,
        now_ms=NOW_MS,
    )
    assert plan is first
