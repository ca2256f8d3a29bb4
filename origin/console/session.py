"""Console sessions: a signed cookie holding the role and a token fingerprint, and CSRF.

Cookie ``p13n_console`` (HttpOnly, SameSite=Strict, Path=/console, Secure over https)::

    c1.<nonce>.<expires_s>.<role|->.<fingerprint|->.<kid>.<sig>
    sig = HMAC-SHA256 of everything before it with the console key ``kid`` (cache_keys)

The raw token never leaves the sign-in request: each request finds the configured token
whose fingerprint the cookie names, so removing a token from the configuration signs its
sessions out. Signing out revokes the session at once: its nonce goes on a deny-list in Redis
(``Keys.console_revoked``) for the session's remaining lifetime, and every request of a
signed-in session checks it (one EXISTS), so a copy of the cookie stops working too.
A signed-out visitor gets a session without a role, so the sign-in form has a CSRF token too.
The CSRF token is the HMAC of the session's nonce; sign-in issues a new nonce (no session
fixation).
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from cache_keys import KeyRing
from origin.admin.base import ADMIN_BUDGET_S
from origin.auth import fingerprint
from origin.settings import Settings
from origin.state import AppState

__all__ = [
    "COOKIE",
    "Session",
    "csrf_ok",
    "csrf_token",
    "decode",
    "encode",
    "is_revoked",
    "new",
    "revoke",
    "token_for",
]

COOKIE = "p13n_console"
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,32}")
_FP_RE = re.compile(r"[0-9a-f]{12}")
_ROLE_RE = re.compile(r"[a-z]{1,20}")
MAX_COOKIE = 200


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's console session; ``role`` is empty while signed out."""

    nonce: str
    expires_s: int
    role: str = ""
    fingerprint: str = ""

    @property
    def signed_in(self) -> bool:
        """Whether a token was presented for this session."""
        return bool(self.role)


def new(now_s: float, ttl_s: int, role: str = "", fp: str = "") -> Session:
    """A fresh session (a new nonce, so a new CSRF token)."""
    return Session(secrets.token_urlsafe(16), int(now_s) + ttl_s, role, fp)


def encode(session: Session, ring: KeyRing) -> str:
    """The cookie value."""
    body = f"c1.{session.nonce}.{session.expires_s}.{session.role or '-'}"
    return ring.sign(f"{body}.{session.fingerprint or '-'}")


def decode(value: str | None, ring: KeyRing, now_s: float) -> Session | None:
    """The session in a valid, unexpired cookie; None for anything else."""
    if not value or len(value) > MAX_COOKIE or not value.isascii():
        return None
    body = ring.verify(value)
    parts = body.split(".") if body else []
    if len(parts) != 5 or parts[0] != "c1" or not parts[2].isdigit():
        return None
    _, nonce, expires, role, fp = parts
    if not _NONCE_RE.fullmatch(nonce) or int(expires) <= now_s:
        return None
    if role == "-" and fp == "-":
        return Session(nonce, int(expires))
    if not _ROLE_RE.fullmatch(role) or not _FP_RE.fullmatch(fp):
        return None
    return Session(nonce, int(expires), role, fp)


def csrf_token(session: Session, ring: KeyRing) -> str:
    """The CSRF token every form of this session carries."""
    return ring.current.mac(f"csrf.{session.nonce}".encode("ascii"))


def csrf_ok(session: Session | None, presented: object, ring: KeyRing) -> bool:
    """Whether a posted form's token belongs to this session (constant time)."""
    if session is None or not isinstance(presented, str) or not presented.isascii():
        return False
    return hmac.compare_digest(csrf_token(session, ring).encode(), presented.encode())


def token_for(session: Session, settings: Settings) -> str | None:
    """The configured token a signed-in session stands for, while its role is unchanged."""
    found = None
    for token, role in settings.admin_tokens.items():  # no early exit
        same = hmac.compare_digest(fingerprint(token).encode(), session.fingerprint.encode())
        if same and role == session.role:
            found = token
    return found


async def revoke(state: AppState, session: Session) -> None:
    """Deny ``session`` from now until its cookie would have expired anyway."""
    remaining_s = max(1, session.expires_s - int(state.clock()) + 1)
    key = state.keys.console_revoked(session.nonce)
    await state.store.run(
        "console_revoke", state.store.client.set(key, 1, ex=remaining_s), budget_s=ADMIN_BUDGET_S
    )


async def is_revoked(state: AppState, session: Session) -> bool:
    """Whether ``session`` was signed out (503 when Redis cannot say: never assume not)."""
    key = state.keys.console_revoked(session.nonce)
    found = await state.store.run(
        "console_revoked", state.store.client.exists(key), budget_s=ADMIN_BUDGET_S
    )
    return bool(found)
