"""Cookie names and attributes, the Cookie-header parser, and the signed context cookie.

Context cookie, version 1: the light per-request context the edge reranks with::

    c1.<base64url(JSON {"c": [categories], "k": [cart skus], "p": [durable purchases],
                         "t": issued_at_s})>.<kid>.<sig>

At most 1 KB in all; the encoder drops the oldest entries (lists are newest first) until it
fits, because the cookie is a hint, never the record of truth.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from cache_keys.tokens import KeyRing

__all__ = [
    "CONTEXT_COOKIE",
    "MAX_CONTEXT_BYTES",
    "OPTOUT_COOKIE",
    "SEGMENT_COOKIE",
    "SHOPPER_COOKIE",
    "ContextCookie",
    "CookieSpec",
    "context_current",
    "decode_context",
    "encode_context",
    "parse_cookie_header",
]

MAX_CONTEXT_BYTES = 1024
MAX_CONTEXT_CATEGORIES = 5
MAX_CONTEXT_CART = 20
MAX_CONTEXT_PURCHASES = 20
# Longest Cookie header read: browsers send up to ~180 cookies of 4 KB; shops with heavy
# analytics pass 8 KB, and dropping the header then would drop the opt-out and the shopper id.
MAX_COOKIE_HEADER = 64 * 1024


@dataclass(frozen=True, slots=True)
class CookieSpec:
    """A cookie's name and attributes, so every tier sets it identically."""

    name: str
    max_age_s: int
    http_only: bool = True
    secure: bool = True
    same_site: str = "Lax"
    path: str = "/"

    def set_cookie(self, value: str, *, max_age_s: int | None = None) -> str:
        """A ``Set-Cookie`` header value for ``value``."""
        age = self.max_age_s if max_age_s is None else max_age_s
        parts = [f"{self.name}={value}", f"Path={self.path}", f"Max-Age={age}"]
        parts.append(f"SameSite={self.same_site}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        return "; ".join(parts)


# Browsers cap cookie lifetimes at 400 days; the shopper id is the A/B unit, so keep it long.
SHOPPER_COOKIE = CookieSpec("p13n_sid", max_age_s=400 * 86400)
# Segment cookies are short-lived: a shopper's segment can change daily.
SEGMENT_COOKIE = CookieSpec("p13n_seg", max_age_s=86400)
CONTEXT_COOKIE = CookieSpec("p13n_ctx", max_age_s=7 * 86400)
# Readable by the page's own consent banner, hence not HttpOnly.
OPTOUT_COOKIE = CookieSpec("p13n_optout", max_age_s=400 * 86400, http_only=False)


def parse_cookie_header(header: str | None) -> dict[str, str]:
    """``"a=1; b=2"`` -> ``{"a": "1", "b": "2"}``; first occurrence wins, junk is skipped.
    Only the first ``MAX_COOKIE_HEADER`` characters are read, up to the last whole cookie."""
    out: dict[str, str] = {}
    if not header:
        return out
    if len(header) > MAX_COOKIE_HEADER:
        header = header[:MAX_COOKIE_HEADER].rpartition(";")[0]
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name and name not in out:
            out[name] = value.strip().strip('"')
    return out


@dataclass(frozen=True, slots=True)
class ContextCookie:
    """Recent categories, cart skus and recent durable purchases, newest first."""

    categories: tuple[str, ...] = ()
    cart: tuple[str, ...] = ()
    durable_purchases: tuple[str, ...] = ()
    issued_at_s: int = 0
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def _payload(ctx: ContextCookie, cats: int, cart: int, bought: int) -> str:
    doc = {
        "c": list(ctx.categories[:cats]),
        "k": list(ctx.cart[:cart]),
        "p": list(ctx.durable_purchases[:bought]),
        "t": int(ctx.issued_at_s),
    }
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def encode_context(ctx: ContextCookie, keyring: KeyRing) -> str:
    """The signed context cookie value, trimmed (oldest first) to fit 1 KB."""
    cats = min(len(ctx.categories), MAX_CONTEXT_CATEGORIES)
    cart = min(len(ctx.cart), MAX_CONTEXT_CART)
    bought = min(len(ctx.durable_purchases), MAX_CONTEXT_PURCHASES)
    while True:
        token = keyring.sign("c1." + _payload(ctx, cats, cart, bought))
        if len(token) <= MAX_CONTEXT_BYTES or cats + cart + bought == 0:
            return token
        # Drop from the longest list first: purchases and cart matter equally to reranking.
        if bought >= cart and bought > 0:
            bought -= 1
        elif cart > 0:
            cart -= 1
        else:
            cats -= 1


def _strs(value: object, limit: int) -> tuple[str, ...] | None:
    if not isinstance(value, list) or len(value) > limit:
        return None
    for v in value:  # a loop, not all(<generator>): this runs three times per request
        if type(v) is not str or not 0 < len(v) <= 64:
            return None
    return tuple(value)


def decode_context(
    token: object, keyring: KeyRing, now_s: float, max_age_s: int = 0
) -> ContextCookie | None:
    """The context in a valid cookie, else None (never raises on junk)."""
    if not isinstance(token, str) or len(token) > MAX_CONTEXT_BYTES or not token.isascii():
        return None
    body = keyring.verify(token)
    if body is None or not body.startswith("c1."):
        return None
    try:
        raw = base64.urlsafe_b64decode(body[3:] + "=" * (-len(body[3:]) % 4))
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    cats = _strs(doc.get("c", []), MAX_CONTEXT_CATEGORIES)
    cart = _strs(doc.get("k", []), MAX_CONTEXT_CART)
    bought = _strs(doc.get("p", []), MAX_CONTEXT_PURCHASES)
    issued = doc.get("t", 0)
    if cats is None or cart is None or bought is None or not isinstance(issued, int):
        return None
    if not context_current(issued, now_s, max_age_s):
        return None
    return ContextCookie(cats, cart, bought, issued)


CLOCK_SKEW_S = 300  # a context issued this far in the future still counts (clock drift)


def context_current(issued_at_s: int, now_s: float, max_age_s: int = 0) -> bool:
    """Whether a context issued at ``issued_at_s`` may be used at ``now_s``: not from the
    future (beyond clock skew), not older than ``max_age_s`` (the cookie's max-age)."""
    age = max_age_s or CONTEXT_COOKIE.max_age_s
    return now_s - age <= issued_at_s <= now_s + CLOCK_SKEW_S
