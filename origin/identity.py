"""Who a shopper request is for: the anonymous-id cookie, or ``?user=`` for trusted callers.

``?user=`` is accepted only with a service (or admin) token, or when the origin runs in
trusted local mode (``p13n up``, benchmarks). Opt-out is ``Sec-GPC: 1`` or the opt-out
cookie: nothing personal is read, written or set for such a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from cache_keys import is_shopper_id
from cache_keys.wire import OPTOUT_COOKIE, SHOPPER_COOKIE
from origin.auth import require
from origin.errors import BadRequest
from origin.settings import Settings

__all__ = ["Shopper", "identify", "identify_cookie"]


@dataclass(frozen=True, slots=True)
class Shopper:
    """The shopper id (None when the request carries none) and the opt-out flag."""

    sid: str | None
    optout: bool


def _optout(request: Request) -> bool:
    return request.headers.get("sec-gpc", "").strip() == "1" or (
        OPTOUT_COOKIE.name in request.cookies
        and request.cookies[OPTOUT_COOKIE.name] not in ("", "0")
    )


def identify_cookie(request: Request) -> Shopper:
    """The shopper of the request's cookie alone (the collector never takes ``?user=``)."""
    cookie = request.cookies.get(SHOPPER_COOKIE.name)
    return Shopper(cookie if is_shopper_id(cookie) else None, _optout(request))


def identify(request: Request, settings: Settings) -> Shopper:
    """The shopper of ``request``; 400 for a malformed ``?user=``, 401/403 without a token."""
    optout = _optout(request)
    user = request.query_params.get("user")
    if user is not None:
        if not settings.trusted_local:
            require(request, settings, ("service",))
        if not is_shopper_id(user):
            raise BadRequest("user must be a 22-character anonymous shopper id", field="user")
        return Shopper(user, optout)
    return identify_cookie(request)
