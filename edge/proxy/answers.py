"""What the self-hosted edge sends back for proxied content, and its own problem answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cache_keys.wire import PROBLEM_HEADERS, Problem
from edge.cache_status import CACHE_NAME

__all__ = ["Answer", "bad_gateway", "client_answer", "problem_answer"]


@dataclass
class Answer:
    """What the proxy sends back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cache_status: str
    # A fresh hit's pre-encoded headers (``StoredResponse.wire_headers``) and its Age: the
    # sender then appends Age, Cache-Status, Content-Length (and Date) and encodes nothing
    # else. None: encode ``headers``.
    wire: list[tuple[bytes, bytes]] | None = None
    age: int = 0

    def with_headers(self) -> list[tuple[str, str]]:
        return [*self.headers, ("cache-status", self.cache_status)]


def client_answer(
    status: int,
    resp_headers: list[tuple[str, str]],
    body: bytes,
    req_headers: Mapping[str, str],
    cache_status: str,
) -> Answer:
    """Answer 304 when the client's If-None-Match matches, else the full response."""
    inm = req_headers.get("if-none-match")
    etag = next((v for k, v in resp_headers if k == "etag"), None)
    if status == 200 and inm and etag and etag in {t.strip() for t in inm.split(",")}:
        return Answer(
            304,
            [(k, v) for k, v in resp_headers if k not in ("content-encoding", "content-type")],
            b"",
            cache_status,
        )
    return Answer(status, resp_headers, body, cache_status)


def problem_answer(
    status: int, slug: str, title: str, detail: str, cache_status: str = ""
) -> Answer:
    """An RFC 9457 problem answered by the edge (never stored), in the one shape of
    ``cache_keys.wire.Problem``."""
    body = Problem(status, slug, title, detail).encode()
    return Answer(status, list(PROBLEM_HEADERS), body, cache_status or f"{CACHE_NAME}; fwd=bypass")


def bad_gateway(cache_status: str) -> Answer:
    """The 502 of a proxied request the origin never answered."""
    detail = "the origin could not be reached"
    return problem_answer(502, "origin-unavailable", "Bad gateway", detail, cache_status)
