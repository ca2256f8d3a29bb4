"""Anonymous shopper ids and signed tokens (segment cookie, and the signing used by wire).

Segment cookie, version 1 (all ASCII, no characters that need quoting in a cookie)::

    1.<hseg>.<expires_at_s>.<kid>.<sig>
    sig = base64url(HMAC-SHA256(secret[kid], "1.<hseg>.<expires_at_s>.<kid>"))[:22]

Key rotation: a ``KeyRing`` holds the current key, which signs, and optionally the previous
one; a token verifies with whichever key its ``kid`` names. Verification compares in
constant time and never raises: malformed, forged, expired or oversized input all give None.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from cache_keys.segments import Hseg, is_hseg

__all__ = [
    "MAX_TOKEN_LENGTH",
    "SIG_LENGTH",
    "KeyRing",
    "SigningKey",
    "is_shopper_id",
    "new_shopper_id",
    "segment_claims",
    "segment_expiry",
    "sign_segment",
    "verify_segment",
]

# Longest segment token we will even look at; a real one is 1+16+10+kid+22+4 ≈ 60 chars.
MAX_TOKEN_LENGTH = 128
SIG_LENGTH = 22  # 132 bits of the HMAC, base64url without padding
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_SHOPPER_RE = re.compile(r"[A-Za-z0-9_-]{22}")
_URLSAFE = bytes.maketrans(b"+/", b"-_")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC key with its short public id (``kid``)."""

    kid: str
    secret: bytes
    # HMAC's inner and outer hash states after the padded key (RFC 2104), computed once:
    # each MAC then costs two hash copies instead of a full HMAC set-up (edges verify two
    # cookies per request).
    _pads: tuple[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _KID_RE.fullmatch(self.kid):
            raise ValueError("kid must be 1-16 characters of A-Za-z0-9_-")
        if len(self.secret) < 16:
            raise ValueError("signing secrets must be at least 16 bytes")
        key = self.secret if len(self.secret) <= 64 else hashlib.sha256(self.secret).digest()
        key = key.ljust(64, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        object.__setattr__(self, "_pads", (inner, outer))

    def mac(self, message: bytes) -> str:
        """The truncated base64url HMAC-SHA256 of ``message``."""
        inner, outer = self._pads[0].copy(), self._pads[1].copy()
        inner.update(message)
        outer.update(inner.digest())
        return (
            binascii.b2a_base64(outer.digest(), newline=False)[:SIG_LENGTH]
            .translate(_URLSAFE)
            .decode("ascii")
        )

    def __repr__(self) -> str:  # never print secrets
        return f"SigningKey(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The current signing key and, during a rotation, the previous one."""

    current: SigningKey
    previous: SigningKey | None = None

    def find(self, kid: str) -> SigningKey | None:
        """The key named ``kid``, if this ring holds it."""
        if kid == self.current.kid:
            return self.current
        if self.previous is not None and kid == self.previous.kid:
            return self.previous
        return None

    def sign(self, body: str) -> str:
        """``body`` + ``.kid.sig`` signed with the current key."""
        head = f"{body}.{self.current.kid}"
        return f"{head}.{self.current.mac(head.encode('ascii'))}"

    def verify(self, token: str) -> str | None:
        """The signed body of ``token`` when its signature is valid, else None."""
        body_kid, sep, sig = token.rpartition(".")
        if not sep or len(sig) != SIG_LENGTH:
            return None
        body, sep, kid = body_kid.rpartition(".")
        key = self.find(kid) if sep else None
        if key is None:
            return None
        expected = key.mac(body_kid.encode("ascii", "replace"))
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii", "replace")):
            return None
        return body


def new_shopper_id() -> str:
    """A random anonymous shopper id: 128 bits, 22 URL-safe characters."""
    return secrets.token_urlsafe(16)


def is_shopper_id(value: object) -> bool:
    """Whether ``value`` has the shape of an anonymous shopper id."""
    return isinstance(value, str) and _SHOPPER_RE.fullmatch(value) is not None


def sign_segment(hseg: Hseg, expires_at_s: int, keyring: KeyRing) -> str:
    """The segment cookie value for ``hseg``, valid until ``expires_at_s`` (epoch seconds)."""
    if not is_hseg(hseg):
        raise ValueError("only a hashed segment can be signed")
    return keyring.sign(f"1.{hseg}.{int(expires_at_s)}")


def segment_claims(token: object, keyring: KeyRing, now_s: float) -> tuple[Hseg, int] | None:
    """(hseg, expiry in epoch seconds) of a valid, unexpired segment cookie; else None."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN_LENGTH:
        return None
    body = keyring.verify(token)
    if body is None:
        return None
    parts = body.split(".")
    if len(parts) != 3 or parts[0] != "1" or not is_hseg(parts[1]) or not parts[2].isdigit():
        return None
    expires = int(parts[2])
    if expires <= now_s:
        return None
    return Hseg(parts[1]), expires


def verify_segment(token: object, keyring: KeyRing, now_s: float) -> Hseg | None:
    """The hseg in a valid, unexpired segment cookie; None for anything else."""
    claims = segment_claims(token, keyring, now_s)
    return None if claims is None else claims[0]


def segment_expiry(token: object, keyring: KeyRing, now_s: float) -> int | None:
    """Expiry (epoch seconds) of a valid segment cookie, for refresh-ahead decisions."""
    claims = segment_claims(token, keyring, now_s)
    return None if claims is None else claims[1]
