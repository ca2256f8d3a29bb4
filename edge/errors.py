"""Errors of the edge.

    EdgeError (Exception)
     ├── SettingsError     the Worker's vars/secrets (or the proxy's environment) are unusable
     └── OriginError       the origin gave no usable answer within its budget (``status`` 0:
                           no answer at all; else the status it answered, 200 included when
                           its body was not the document asked for)

The decision core itself never raises on shopper input: bad cookies, unknown routes and
junk headers all have a safe answer (anonymous segment, default policy, default device).
Adapters translate their transport's errors (httpx, JS fetch) into ``OriginError`` once,
with ``raise … from exc``. (``origin.errors.OriginError`` is another thing: the base of the
errors the origin itself answers as problem+json.)
"""

from __future__ import annotations

__all__ = ["EdgeError", "OriginError", "SettingsError"]


class EdgeError(Exception):
    """Base class of the edge's own errors."""


class SettingsError(EdgeError):
    """A setting is missing or malformed; names the variable, never its value."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


class OriginError(EdgeError):
    """The origin gave no usable answer within its budget (status 0: no answer at all)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: status {status}")
        self.status = status
        self.what = what
