"""Errors of the edge.

    EdgeError (Exception)
     └── SettingsError     the Worker's vars/secrets (or the proxy's environment) are unusable

The decision core itself never raises on shopper input: bad cookies, unknown routes and
junk headers all have a safe answer (anonymous segment, default policy, default device).
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of the edge's own errors."""


class SettingsError(EdgeError):
    """A setting is missing or malformed; names the variable, never its value."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
