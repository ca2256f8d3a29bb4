"""Errors raised by the shared contract.

    CacheKeysError (ValueError)
     ├── KeyPartError      a cache-key dimension is missing, unknown or malformed
     ├── TagError          a cache tag breaks Cloudflare's Cache-Tag rules
     └── WireError         a cookie, purge message or edge-config document is malformed

Token verification never raises: a bad cookie is "no valid segment", not an error.
"""

from __future__ import annotations


class CacheKeysError(ValueError):
    """Base class for every error of the shared contract."""


class KeyPartError(CacheKeysError):
    """A cache-key dimension is missing, unknown or malformed."""


class TagError(CacheKeysError):
    """A cache tag breaks the Cache-Tag rules."""


class WireError(CacheKeysError):
    """A wire document (cookie, purge message, edge config) is malformed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
