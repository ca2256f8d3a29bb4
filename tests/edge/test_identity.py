"""Identity: opt-out, shopper ids, segment cookie verification and refresh, context."""

from __future__ import annotations

from cache_keys.segments import ANON_HSEG
from cache_keys.tokens import KeyRing, SigningKey, sign_segment
from cache_keys.wire import OPTOUT_COOKIE, ContextCookie
from edge.identity import resolve_identity
from tests.support.edge import HSEG, NOW_S, SHOPPER, make_settings, parts, token

SETTINGS = make_settings()


def mint() -> str:
    return "mintedmintedmintedmint"


def test_valid_cookie_far_from_expiry() -> None:
    ident = resolve_identity(parts(seg=token()), SETTINGS, NOW_S, mint)
    assert (ident.shopper_id, ident.minted, ident.hseg) == (SHOPPER, False, HSEG)
    assert ident.refresh_segment is False
    assert ident.segment_expires_s == NOW_S + 86400


def test_missing_shopper_id_is_minted() -> None:
    ident = resolve_identity(parts(shopper=None), SETTINGS, NOW_S, mint)
    assert ident.shopper_id == "mintedmintedmintedmint"
    assert ident.minted is True


def test_malformed_shopper_id_is_replaced() -> None:
    ident = resolve_identity(parts(shopper="short"), SETTINGS, NOW_S, mint)
    assert ident.minted is True


def test_forged_expired_or_missing_segment_is_anonymous_and_asks_for_refresh() -> None:
    other_ring = KeyRing(SigningKey("k1", b"someone-elses-secret-000"))
    for seg in (
        None,
        token()[:-2] + "xx",
        sign_segment(HSEG, NOW_S + 86400, other_ring),
        token(expires_s=NOW_S - 1),
        "garbage",
    ):
        ident = resolve_identity(parts(seg=seg), SETTINGS, NOW_S, mint)
        assert ident.hseg == ANON_HSEG, seg
        assert ident.refresh_segment is True


def test_near_expiry_keeps_the_segment_and_asks_for_refresh() -> None:
    ident = resolve_identity(parts(seg=token(expires_s=NOW_S + 600)), SETTINGS, NOW_S, mint)
    assert ident.hseg == HSEG
    assert ident.refresh_segment is True


def test_opt_out_by_header_or_cookie_means_nothing_personal() -> None:
    ctx = ContextCookie(("dairy",), ("SKU-1",), (), NOW_S)
    gpc = parts(seg=token(), ctx=ctx, headers={"sec-gpc": "1"})
    cookie = parts(seg=token(), ctx=ctx)
    cookie = cookie.with_cookie(OPTOUT_COOKIE.name, "1")
    for p in (gpc, cookie):
        ident = resolve_identity(p, SETTINGS, NOW_S, mint)
        assert ident.opted_out is True
        assert ident.shopper_id is None and ident.minted is False
        assert ident.hseg == ANON_HSEG and ident.context is None
        assert ident.refresh_segment is False


def test_opt_out_cookie_set_to_zero_is_not_opt_out() -> None:
    p = parts(seg=token()).with_cookie(OPTOUT_COOKIE.name, "0")
    assert resolve_identity(p, SETTINGS, NOW_S, mint).opted_out is False


def test_context_cookie_is_decoded_when_valid() -> None:
    ctx = ContextCookie(("dairy", "bakery"), ("SKU-1",), ("TV-9",), NOW_S)
    ident = resolve_identity(parts(seg=token(), ctx=ctx), SETTINGS, NOW_S, mint)
    assert ident.context == ctx
    tampered = parts(seg=token(), ctx=ctx)
    tampered = tampered.with_cookie("p13n_ctx", tampered.cookies["p13n_ctx"][:-3] + "abc")
    assert resolve_identity(tampered, SETTINGS, NOW_S, mint).context is None
