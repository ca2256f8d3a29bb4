"""The one RFC 9457 problem+json shape every tier answers errors with.

    >>> Problem(404, "not-found", "Not found", "no such experiment").to_json()["type"]
    'https://p13n.invalid/problems/not-found'

One ``type`` convention: ``PROBLEM_TYPE_BASE`` + a slug naming the kind of problem (the
origin's 404 is ``.../problems/not-found``, an edge's 502 ``.../problems/origin-unavailable``),
never ``about:blank``. Problems are never stored by a cache (``Cache-Control: no-store``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROBLEM_CONTENT_TYPE", "PROBLEM_HEADERS", "PROBLEM_TYPE_BASE", "Problem"]

PROBLEM_TYPE_BASE = "https://p13n.invalid/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
# The headers of every problem answer, whichever tier sends it.
PROBLEM_HEADERS = (("content-type", PROBLEM_CONTENT_TYPE), ("cache-control", "no-store"))


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: status, slug (the ``type`` is derived from it), title, detail."""

    status: int
    slug: str
    title: str
    detail: str
    instance: str = ""
    extensions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        """The ``type`` URI."""
        return PROBLEM_TYPE_BASE + self.slug

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready body (members in RFC 9457 order, then the extensions)."""
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.instance:
            doc["instance"] = self.instance
        doc.update(self.extensions)
        return doc

    def encode(self) -> bytes:
        """The body as compact UTF-8 JSON."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()
