"""Who is asking: opt-out, the anonymous shopper id, the verified segment, the context cookie.

Opt-out (``Sec-GPC: 1`` or the opt-out cookie) wins over everything: the anonymous segment,
no shopper id (none read, none minted), no experiments, no exposure, no context.
A missing, forged or expired segment cookie is the anonymous segment, never an error; it also
asks for a refresh (``refresh_segment``) so that shoppers served from cache do not stay
anonymous forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from cache_keys.segments import ANON_HSEG, Hseg
from cache_keys.tokens import is_shopper_id
from cache_keys.wire import (
    CONTEXT_COOKIE,
    OPTOUT_COOKIE,
    SEGMENT_COOKIE,
    SHOPPER_COOKIE,
    ContextCookie,
    opted_out,
)
from edge.request import RequestParts
from edge.settings import EdgeSettings
from edge.verified import verified_context, verified_segment

__all__ = ["ANON", "Identity", "is_opted_out", "resolve_identity"]

ANON = Hseg(ANON_HSEG)


class Identity(NamedTuple):
    """The request's identity as far as personalization is concerned."""

    shopper_id: str | None
    minted: bool
    hseg: Hseg
    segment_expires_s: int | None
    opted_out: bool
    refresh_segment: bool
    context: ContextCookie | None


OPTED_OUT = Identity(None, False, ANON, None, True, False, None)


def is_opted_out(parts: RequestParts) -> bool:
    """The one opt-out rule of every tier (``cache_keys.wire.opted_out``)."""
    return opted_out(parts.headers.get("sec-gpc"), parts.cookies.get(OPTOUT_COOKIE.name))


def resolve_identity(
    parts: RequestParts, settings: EdgeSettings, now_s: float, mint: Callable[[], str]
) -> Identity:
    """Read (or mint) the shopper id, verify the segment cookie, decode the context cookie."""
    if is_opted_out(parts):
        return OPTED_OUT
    shopper = parts.cookies.get(SHOPPER_COOKIE.name)
    minted = not is_shopper_id(shopper)
    if minted:
        shopper = mint()
    assert shopper is not None
    token = parts.cookies.get(SEGMENT_COOKIE.name)
    claims = verified_segment(token, settings.segment_keys, now_s) if token else None
    hseg, expires = claims if claims is not None else (ANON, None)
    refresh = expires is None or expires - now_s < settings.segment_refresh_ahead_s
    raw_ctx = parts.cookies.get(CONTEXT_COOKIE.name)
    context = verified_context(raw_ctx, settings.context_keys, now_s) if raw_ctx else None
    # positional (shopper_id, minted, hseg, segment_expires_s, opted_out, refresh_segment,
    # context): this runs on every request
    return Identity(shopper, minted, hseg, expires, False, refresh, context)
