"""Bearer tokens with roles, from configuration; compared in constant time.

Roles: ``merchandiser`` (catalog, invalidations), ``experimenter`` (experiments, results),
``service`` (edges: heartbeats, ``?user=`` on recommendations), ``admin`` (everything).
A caller is identified in the audit log by role and a token fingerprint, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from origin.errors import Forbidden, Unauthorized
from origin.settings import Settings

__all__ = ["Caller", "caller_for", "fingerprint", "require", "role_of"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: their role and their token's fingerprint."""

    role: str
    fingerprint: str

    @property
    def who(self) -> str:
        """The audit log's ``who``."""
        return f"{self.role}:{self.fingerprint}"


def fingerprint(token: str) -> str:
    """A short public digest of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def caller_for(token: str, settings: Settings) -> Caller | None:
    """Who ``token`` identifies, None when it is not configured (the console's sign-in)."""
    found = None
    presented = token.encode("utf-8")
    for known, role in settings.admin_tokens.items():  # no early exit: same work for any token
        if hmac.compare_digest(known.encode("utf-8"), presented):
            found = role
    return None if found is None else Caller(found, fingerprint(token))


def role_of(request: Request, settings: Settings) -> Caller | None:
    """The caller's role, None without an Authorization header; 401 for an unknown token."""
    token = _bearer(request)
    if token is None:
        return None
    caller = caller_for(token, settings)
    if caller is None:
        raise Unauthorized("the bearer token is not recognised")
    return caller


def require(request: Request, settings: Settings, roles: Iterable[str]) -> Caller:
    """The caller, when it holds one of ``roles`` (admin always does); else 401 or 403."""
    caller = role_of(request, settings)
    if caller is None:
        raise Unauthorized("this endpoint needs a bearer token")
    allowed = {*roles, "admin"}
    if caller.role not in allowed:
        raise Forbidden(
            f"role {caller.role!r} may not do this; it needs one of {sorted(allowed)}",
            role=caller.role,
        )
    return caller
