"""Who a shopper request is for: the anonymous-id cookie, or ``?user=`` for trusted callers.

``?user=`` is accepted only with a service (or admin) token, or when the origin runs in
trusted local mode (``p13n up``, benchmarks). Opt-out is ``Sec-GPC: 1`` or the opt-out
cookie with any value but an explicit no (the edge's rule, ``edge.identity.is_opted_out``):
nothing personal is read, written or set for such a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from cache_keys import is_shopper_id
from cache_keys.wire import OPTOUT_COOKIE, SHOPPER_COOKIE
from origin.auth import require
from origin.errors import BadRequest
from origin.settings import Settings

__all__ = ["Shopper", "identify", "identify_cookie", "is_opted_out"]

# The opt-out cookie values that mean "not opted out"; anything else opts out. The same set
# as the edge's (``edge.identity``), so both tiers agree on who opted out.
_OPTOUT_OFF = frozenset({"", "0", "false", "no"})


@dataclass(frozen=True, slots=True)
class Shopper:
    """The shopper id (None when the request carries none) and the opt-out flag."""

    sid: str | None
    optout: bool


def is_opted_out(request: Request) -> bool:
    """``Sec-GPC: 1`` or an opt-out cookie with any value but an explicit no."""
    if request.headers.get("sec-gpc", "").strip() == "1":
        return True
    value = request.cookies.get(OPTOUT_COOKIE.name)
    return value is not None and value.strip().lower() not in _OPTOUT_OFF


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
        if not is_shopper_id(user):
            raise BadRequest("user must be a 22-character anonymous shopper id", field="user")
        return Shopper(user, optout)
    return identify_cookie(request)
