"""Who a shopper request is for: the anonymous-id cookie, or ``?user=`` for trusted callers.

``?user=`` is accepted only with a service (or admin) token, or when the origin runs in
trusted local mode (``p13n up``, benchmarks); it names a shopper of either kind, the
anonymous id or the shop's customer id, checked by the one id policy
(``segmenter.shoppers.ShopperIds``, configured by ``P13N_CUSTOMER_ID_PATTERN``).
Opt-out is ``Sec-GPC: 1`` or the opt-out cookie with any value but an explicit no
(``cache_keys.wire.opted_out``, every tier's rule): nothing personal is read, written or
set for such a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from cache_keys import is_shopper_id
from cache_keys.wire import OPTOUT_COOKIE, SHOPPER_COOKIE, join_fields, opted_out
from origin.auth import require
from origin.errors import BadRequest
from origin.settings import Settings

__all__ = ["Shopper", "identify", "identify_cookie", "is_opted_out"]


@dataclass(frozen=True, slots=True)
class Shopper:
    """The shopper id (None when the request carries none) and the opt-out flag."""

    sid: str | None
    optout: bool


def is_opted_out(request: Request) -> bool:
    """The one opt-out rule of every tier (``cache_keys.wire.opted_out``); a repeated
    ``Sec-GPC`` header is read whole, every value."""
    gpc = join_fields(request.headers.getlist("sec-gpc"))
    return opted_out(gpc, request.cookies.get(OPTOUT_COOKIE.name))


def identify_cookie(request: Request) -> Shopper:
    """The shopper of the request's cookie alone (the collector never takes ``?user=``)."""
    cookie = request.cookies.get(SHOPPER_COOKIE.name)
    return Shopper(cookie if is_shopper_id(cookie) else None, is_opted_out(request))


def identify(request: Request, settings: Settings) -> Shopper:
    """The shopper of ``request``; 400 for a malformed ``?user=``, 401/403 without a token."""
    optout = is_opted_out(request)
    user = request.query_params.get("user")
    if user is not None:
        if not settings.trusted_local:
            require(request, settings, ("service",))
        problem = settings.shopper_ids.problem(user)
        if problem is not None:
            raise BadRequest(f"user {problem}", field="user")
        return Shopper(user, optout)
    return identify_cookie(request)
