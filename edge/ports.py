"""The three ports of the rail flow (``edge.flow``), as small protocols each edge implements.

    Origin      GET a URL within a budget (status and body); post exposure batches
    EntryCache  get / put a rail entry by cache key
    Background  spawn work that outlives the answer

``get_json`` is the one way the flow reads the origin: the request's trace forwarded, and
anything but a 200 with a JSON body an ``OriginError`` (the status the origin answered; 200
when its body was unusable, 0 when it never answered).
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Mapping
from typing import Any, NamedTuple, Protocol

from cache_keys.keys import CacheKey
from edge.answer import Answer
from edge.entry import Entry
from edge.errors import OriginError
from edge.request import current_trace

__all__ = [
    "Background",
    "EntryCache",
    "Origin",
    "Ports",
    "RailReply",
    "StoredEntry",
    "get_json",
]


class Origin(Protocol):
    """The origin, as the flow sees it."""

    async def get(self, url: str, headers: Mapping[str, str], budget_ms: int) -> tuple[int, str]:
        """Status and body of ``GET url`` within ``budget_ms``; ``OriginError(0, ...)`` when
        it did not answer in time (any status is returned, not raised)."""
        ...

    async def post_events(self, batch: dict[str, Any]) -> None:
        """Post one exposure batch to the collector, best effort."""
        ...


class StoredEntry(NamedTuple):
    """An entry to store: the decoded entry, its body, tags, headers and how long to keep it."""

    entry: Entry
    body: str
    tags: tuple[str, ...]
    headers: dict[str, str]
    keep_s: int


class EntryCache(Protocol):
    """The edge's cache of rail entries, by cache key."""

    async def get(self, key: CacheKey) -> Entry | None:
        """The entry stored under ``key``; None when there is none (or it is unreadable)."""
        ...

    async def put(self, key: CacheKey, stored: StoredEntry) -> None:
        """Store ``stored`` under ``key``."""
        ...


class Background(Protocol):
    """Work that outlives the answer (revalidations, exposure posts)."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after (or beside) the answer; it never raises (the flow guards it)."""
        ...


class Ports(NamedTuple):
    """What one edge gives the flow."""

    origin: Origin
    cache: EntryCache
    background: Background


class RailReply(NamedTuple):
    """The answer (always status 200) and the response headers."""

    answer: Answer
    headers: list[tuple[str, str]]


async def get_json(origin: Origin, url: str, budget_ms: int, what: str, cookie: str = "") -> Any:
    """The origin's JSON document at ``url`` (the request's trace and ``cookie`` forwarded);
    ``OriginError`` for anything else: the status it answered, 200 for an unusable body."""
    headers = {"accept": "application/json"}
    if cookie:
        headers["cookie"] = cookie
    if trace := current_trace():
        headers["traceparent"] = trace
    status, body = await origin.get(url, headers, budget_ms)
    if status != 200:
        raise OriginError(status, what)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise OriginError(200, what) from exc
