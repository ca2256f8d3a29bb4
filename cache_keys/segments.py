"""Hashed segments (``hseg``): the only form in which a segment leaves the origin.

    >>> hash_segment("returning|grocery|mid", b"k" * 32)   # doctest: +SKIP
    'q3z5m2k7r4yx2b6a'

An ``hseg`` is exactly 16 characters of lowercase RFC 4648 base32 (``a-z2-7``): the first
80 bits of HMAC-SHA256(key, "seg:" + name). Shopper ids are 22 URL-safe characters, so no
shopper id can pass for an hseg, and the key builder accepts nothing else as a segment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from cache_keys.errors import KeyPartError

__all__ = ["ANON_HSEG", "HSEG_LENGTH", "Hseg", "hash_segment", "is_hseg", "parse_hseg"]

HSEG_LENGTH = 16
_HSEG_RE = re.compile(r"[a-z2-7]{16}")
# The all-zero hash, reserved for the anonymous segment (no cookie, forged cookie, opt-out).
ANON_HSEG = "a" * HSEG_LENGTH


class Hseg(str):
    """A validated hashed segment; construct with ``parse_hseg`` or ``hash_segment``."""

    __slots__ = ()


def is_hseg(value: object) -> bool:
    """Whether ``value`` has the exact hseg format."""
    return isinstance(value, str) and _HSEG_RE.fullmatch(value) is not None


def parse_hseg(value: str) -> Hseg:
    """Validate an hseg received from outside (cookie, URL, config)."""
    if isinstance(value, Hseg):
        return value
    if not is_hseg(value):
        raise KeyPartError(f"hseg must be 16 characters of a-z2-7, got {len(value)} characters")
    return Hseg(value)


def hash_segment(name: str, key: bytes) -> Hseg:
    """Keyed hash of a segment name; never returns ``ANON_HSEG``."""
    if not key:
        raise KeyPartError("segment hashing key must not be empty")
    digest = hmac.new(key, b"seg:" + name.encode("utf-8"), hashlib.sha256).digest()
    value = base64.b32encode(digest[:10]).decode("ascii").lower()
    if value == ANON_HSEG:  # 2**-80: flip one character rather than collide with anon
        value = "b" + value[1:]
    return Hseg(value)
