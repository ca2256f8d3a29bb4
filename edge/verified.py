"""Verified cookies, memoized by their MAC: a returning shopper's cookies are checked once.

A signed cookie's HMAC (and a context cookie's base64 and JSON) is most of what identity
costs per request, and a shopper sends the same cookies on every page view. So a cookie that
verified is remembered under its MAC, with only what the decision reads from it:

    segment cookie  MAC -> (key ring, hseg, expiry, kid)       (no shopper id: a segment
                                                               token holds none)
    context cookie  MAC -> (key ring, the cookie, its context) (categories and skus: no id)

A hit must be the same cookie under the same key ring: the segment cookie is rebuilt from the
kept fields and compared, the context cookie compared as a whole, so a valid MAC on another
body never borrows the claims. Expiry and the context's age are checked on every request,
hit or miss. Forged or expired cookies are never kept (they cannot fill the memo), and each
memo is a plain dict cleared when full (an isolate sees a bounded set of recent shoppers).
"""

from __future__ import annotations

from cache_keys.segments import Hseg
from cache_keys.tokens import SIG_LENGTH, KeyRing, segment_claims
from cache_keys.wire import ContextCookie, context_current, decode_context

__all__ = ["CONTEXTS_MAX", "SEGMENTS_MAX", "clear", "verified_context", "verified_segment"]

SEGMENTS_MAX = 4096  # ~150 bytes each
CONTEXTS_MAX = 2048  # up to ~3 KB each (a 1 KB cookie and its decoded lists)

_SEGMENTS: dict[str, tuple[KeyRing, Hseg, int, str]] = {}
_CONTEXTS: dict[str, tuple[KeyRing, str, ContextCookie]] = {}


def verified_segment(token: str, keyring: KeyRing, now_s: float) -> tuple[Hseg, int] | None:
    """``segment_claims(token, keyring, now_s)``, memoized by the token's MAC."""
    hit = _SEGMENTS.get(token[-SIG_LENGTH:])
    if hit is not None and hit[0] is keyring:
        _, hseg, expires, kid = hit
        if token == f"1.{hseg}.{expires}.{kid}.{token[-SIG_LENGTH:]}":
            return (hseg, expires) if expires > now_s else None
    claims = segment_claims(token, keyring, now_s)
    if claims is not None:
        if len(_SEGMENTS) >= SEGMENTS_MAX:
            _SEGMENTS.clear()
        kid = token[: -SIG_LENGTH - 1].rpartition(".")[2]
        _SEGMENTS[token[-SIG_LENGTH:]] = (keyring, claims[0], claims[1], kid)
    return claims


def verified_context(token: str, keyring: KeyRing, now_s: float) -> ContextCookie | None:
    """``decode_context(token, keyring, now_s)``, memoized by the token's MAC."""
    hit = _CONTEXTS.get(token[-SIG_LENGTH:])
    if hit is not None and hit[0] is keyring and hit[1] == token:
        kept = hit[2]  # decode_context's window, checked again: the cookie ages while kept
        return kept if context_current(kept.issued_at_s, now_s) else None
    ctx = decode_context(token, keyring, now_s)
    if ctx is not None:
        if len(_CONTEXTS) >= CONTEXTS_MAX:
            _CONTEXTS.clear()
        _CONTEXTS[token[-SIG_LENGTH:]] = (keyring, token, ctx)
    return ctx


def clear() -> None:
    """Forget every remembered cookie (tests; a key rotation needs no call: the ring differs)."""
    _SEGMENTS.clear()
    _CONTEXTS.clear()
