"""The origin connection: an ``httpx.AsyncClient`` with timeouts, raw bodies, one error type.

httpx errors are translated here, once, into ``OriginUnavailable`` (``raise … from exc``), so
the cache logic above never sees transport exceptions.

Interim responses (1xx but 101, e.g. 103 Early Hints): httpcore reads them from h11 and
drops them. ``_RelayingHTTP11Connection`` (installed as httpcore's HTTP/1.1 connection
class) hands each to the callback in ``INTERIM_RELAY`` of the request's context, which the
shopper-facing protocol writes to its client before the final answer (RFC 9110 §15.2: a
proxy forwards them). They are never part of the response returned here, so never stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import h11
import httpcore
import httpcore._async.connection
import httpx

from edge.proxy.forwarding import HOP_BY_HOP, connection_named
from edge.proxy.latency import LatencyHistogram

__all__ = [
    "HOP_BY_HOP",
    "INTERIM_EXTENSION",
    "INTERIM_RELAY",
    "WHOLE_EXTENSION",
    "BadTarget",
    "InterimRelay",
    "OriginUnavailable",
    "Upstream",
    "UpstreamResponse",
    "response_headers",
]


InterimRelay = Callable[[int, list[tuple[bytes, bytes]]], None]
# Where an interim response to the current request goes (the client's connection); None: it
# is dropped (background revalidations, the edge's own calls).
INTERIM_RELAY: ContextVar[InterimRelay | None] = ContextVar("p13n_interim_relay", default=None)
# The extension carrying a relay: of the origin request (httpcore), and of the client's
# request in the ASGI scope (set by ``edge.proxy.protocol``).
INTERIM_EXTENSION = "p13n.interim"
# Scope extension: ``whole(status, headers, body) -> bool`` writes a complete answer in one
# write (``edge.proxy.protocol.EdgeProtocol._send_whole``); False when the app must use ASGI
# ``send`` instead. (Named here, beside the other one, so the app need not import the
# protocol.)
WHOLE_EXTENSION = "p13n.whole"


class _RelayingHTTP11Connection(httpcore.AsyncHTTP11Connection):
    """httpcore's HTTP/1.1 connection, handing interim responses to the request's relay."""

    _relay: InterimRelay | None = None

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self._relay = request.extensions.get(INTERIM_EXTENSION)
        return await super().handle_async_request(request)

    async def _receive_event(self, timeout: float | None = None) -> Any:
        event = await super()._receive_event(timeout)
        relay = self._relay
        # (a 101 switches protocols: httpcore's own business, never relayed)
        if relay and isinstance(event, h11.InformationalResponse) and event.status_code != 101:
            relay(event.status_code, list(event.headers.raw_items()))
        return event


# (the name httpcore's connection looks up when it opens an HTTP/1.1 connection)
httpcore._async.connection.AsyncHTTP11Connection = _RelayingHTTP11Connection  # type: ignore[attr-defined]


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


def response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """An origin response's end-to-end headers, names lowercased: hop-by-hop ones and those
    its ``Connection`` names are neither stored nor forwarded (RFC 9110 §7.6.1)."""
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    named = connection_named(",".join(v for k, v in pairs if k == "connection"))
    return [(k, v) for k, v in pairs if k not in HOP_BY_HOP and k not in named]


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
        relay = INTERIM_RELAY.get()
        try:
            request = self.client.build_request(
                method,
                self.base_url + path_qs,
                headers=dict(headers),
                content=body or None,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                extensions={INTERIM_EXTENSION: relay} if relay is not None else None,
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
        kept = response_headers(response.headers.raw)
        response_time = self._clock()
        self.bytes_in += len(raw)
        self.latency.observe((response_time - request_time) * 1000)
        return UpstreamResponse(response.status_code, kept, raw, request_time, response_time)
