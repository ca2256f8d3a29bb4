"""The origin connection: an ``httpx.AsyncClient`` with timeouts, raw bodies, one error type.

httpx errors are translated here, once, into ``OriginUnavailable`` (``raise … from exc``), so
the cache logic above never sees transport exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from edge.proxy.latency import LatencyHistogram

__all__ = ["HOP_BY_HOP", "BadTarget", "OriginUnavailable", "Upstream", "UpstreamResponse"]

# RFC 9110 §7.6.1 connection-specific fields, never forwarded or stored.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
    }
)


class OriginUnavailable(Exception):
    """The origin could not be reached, timed out, or broke the connection."""


class BadTarget(ValueError):
    """The request target cannot be sent to the origin (the client's error, not the origin's)."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A complete origin response with the cache's request and response times."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_time: float
    response_time: float

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class Upstream:
    """Fetches from one origin base URL."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        clock: Callable[[], float] = time.time,
        latency: LatencyHistogram | None = None,
    ) -> None:
        self.client = client
        self.latency = latency or LatencyHistogram()
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self.requests = 0
        self.bytes_in = 0  # body bytes received (the origin's egress to this edge)

    async def fetch(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        timeout_s: float | None = None,
    ) -> UpstreamResponse:
        """One request; the body is read raw (content-encoding kept, so it can be stored)."""
        self.requests += 1
        request_time = self._clock()
        try:
            request = self.client.build_request(
                method,
                self.base_url + path_qs,
                headers=dict(headers),
                content=body or None,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise BadTarget(f"cannot forward {path_qs!r}: {exc}") from exc
        try:
            response = await self.client.send(request, stream=True)
            try:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise OriginUnavailable(f"{type(exc).__name__}: {exc}") from exc
        kept = [
            (k.decode("latin-1").lower(), v.decode("latin-1"))
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        response_time = self._clock()
        self.bytes_in += len(raw)
        self.latency.observe((response_time - request_time) * 1000)
        return UpstreamResponse(response.status_code, kept, raw, request_time, response_time)
