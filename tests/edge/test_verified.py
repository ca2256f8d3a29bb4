"""The verified-cookie memo: the same answers as verifying every time, and no shopper id kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cache_keys.segments import ANON_HSEG
from cache_keys.tokens import SIG_LENGTH, KeyRing, SigningKey, segment_claims
from cache_keys.wire import CONTEXT_COOKIE, ContextCookie, decode_context, encode_context
from edge import verified
from edge.identity import resolve_identity
from tests.support.edge import HSEG, KEYRING, NOW_S, make_settings, parts, token

SETTINGS = make_settings()


@pytest.fixture(autouse=True)
def empty_memo() -> Iterator[None]:
    verified.clear()
    yield
    verified.clear()


def _context(issued_s: int = NOW_S) -> str:
    return encode_context(ContextCookie(("dairy",), ("SKU-1",), ("SKU-9",), issued_s), KEYRING)


def test_a_kept_mac_on_another_body_is_not_the_kept_cookie() -> None:
    good = token()
    assert verified.verified_segment(good, KEYRING, NOW_S) == (HSEG, NOW_S + 86400)
    # Same MAC, the expiry pushed out: a memo keyed by the MAC alone would accept it.
    forged = good.replace(str(NOW_S + 86400), str(NOW_S + 999_999), 1)
    assert forged[-SIG_LENGTH:] == good[-SIG_LENGTH:]
    assert verified.verified_segment(forged, KEYRING, NOW_S) is None
    ctx = _context()
    assert verified.verified_context(ctx, KEYRING, NOW_S) is not None
    tampered = ctx[:5] + ("A" if ctx[5] != "A" else "B") + ctx[6:]
    assert tampered[-SIG_LENGTH:] == ctx[-SIG_LENGTH:] and tampered != ctx
    assert verified.verified_context(tampered, KEYRING, NOW_S) is None


def test_expiry_and_age_are_checked_on_every_request() -> None:
    seg = token(expires_s=NOW_S + 60)
    assert verified.verified_segment(seg, KEYRING, NOW_S) is not None
    assert verified.verified_segment(seg, KEYRING, NOW_S + 60) is None
    ctx = _context()
    assert verified.verified_context(ctx, KEYRING, NOW_S) is not None
    later = NOW_S + CONTEXT_COOKIE.max_age_s + 1
    assert verified.verified_context(ctx, KEYRING, later) is None
    assert decode_context(ctx, KEYRING, later) is None  # the same answer as without the memo


def test_another_key_ring_does_not_borrow_a_kept_cookie() -> None:
    seg, ctx = token(), _context()
    assert verified.verified_segment(seg, KEYRING, NOW_S) is not None
    assert verified.verified_context(ctx, KEYRING, NOW_S) is not None
    rotated = KeyRing(SigningKey("k2", b"the-next-secret-0123456789"))
    assert verified.verified_segment(seg, rotated, NOW_S) is None
    assert verified.verified_context(ctx, rotated, NOW_S) is None


def test_answers_match_verifying_every_time() -> None:
    cases = [token(), token(expires_s=NOW_S - 1), token()[:-2] + "xx", "garbage.x", _context()]
    for now in (NOW_S, NOW_S + 10, NOW_S + 86400):
        for raw in cases:
            for _ in range(2):  # the second call is the memo's
                assert verified.verified_segment(raw, KEYRING, now) == segment_claims(
                    raw, KEYRING, now
                )
                assert verified.verified_context(raw, KEYRING, now) == decode_context(
                    raw, KEYRING, now
                )


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, ContextCookie):
        yield from _strings((value.categories, value.cart, value.durable_purchases))


def test_the_memo_keeps_no_shopper_id_and_stays_bounded() -> None:
    shoppers = [f"shopper{i:015d}" for i in range(verified.SEGMENTS_MAX + 50)]
    for i, shopper in enumerate(shoppers):
        ctx = ContextCookie(("dairy",), ("SKU-1",), (), NOW_S - i)
        p = parts(shopper=shopper, seg=token(expires_s=NOW_S + 3600 + i), ctx=ctx)
        ident = resolve_identity(p, SETTINGS, NOW_S, lambda: "x")
        assert (ident.shopper_id, ident.hseg) == (shopper, HSEG)
    assert 0 < len(verified._SEGMENTS) <= verified.SEGMENTS_MAX
    assert 0 < len(verified._CONTEXTS) <= verified.CONTEXTS_MAX
    # A segment entry is exactly (ring, hseg, expiry, kid); nothing else is kept.
    for ring, hseg, expires, kid in verified._SEGMENTS.values():
        assert (ring, hseg, kid) == (SETTINGS.segment_keys, HSEG, "k1")
        assert isinstance(expires, int)
    kept = {s for entry in verified._CONTEXTS.values() for s in _strings(entry[1:])}
    kept |= set(verified._SEGMENTS)
    kept |= {s for entry in verified._SEGMENTS.values() for s in _strings(entry[1:])}
    assert not any(shopper in s for s in kept for shopper in shoppers)
    assert ANON_HSEG not in kept  # (anonymous answers are not kept either)
