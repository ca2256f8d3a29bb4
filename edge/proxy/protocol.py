"""The edge's HTTP/1.1 server protocol: uvicorn's httptools protocol with the limits a
shopper-facing port needs, and every status code 100-999 on the wire.

uvicorn's senders look the status line up in a table built for 100-599 only, so an origin's
999 used to raise ``KeyError`` mid-answer; ``allow_every_status`` fills the rest of the
three-digit range (empty reason phrase, which RFC 9112 §4 allows) in both of uvicorn's
HTTP implementations.

Limits (``HeadLimits``; defaults in ``edge.proxy.settings``), answered as problem+json on a
closed connection, before any of the request reaches the app:

- request target longer than ``request_line_bytes`` -> 414 (RFC 9110 §15.5.15);
- header field bytes over ``header_bytes``, or more than ``header_count`` fields -> 431
  (RFC 6585 §5); the bytes of a head still in transit are bounded the same way, so a client
  cannot make the parser buffer megabytes of one header;
- a request head not complete ``head_timeout_s`` after its first packet (or after the
  connection opened) -> 408 (RFC 9110 §15.5.9), so slow-header clients are closed;
- a request body whose next part does not arrive within ``body_timeout_s`` (from the end of
  the head, then from each part; nginx's ``client_body_timeout``) -> 408 and closed, and
  the app, which sees the client gone, forwards nothing of it;
- an idle keep-alive connection is closed after uvicorn's ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import functools
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cache_keys.wire import Problem
from edge.proxy.forwarding import HOP_BY_HOP, connection_named
from edge.proxy.upstream import INTERIM_EXTENSION, WHOLE_EXTENSION

if TYPE_CHECKING:
    from edge.proxy.hitpath import HitPath

__all__ = ["EdgeProtocol", "HeadLimits", "allow_every_status", "protocol_class"]


def _phrase(code: int) -> bytes:
    try:
        return http.HTTPStatus(code).phrase.encode()
    except ValueError:
        return b""


def allow_every_status() -> None:
    """Extend uvicorn's status tables to every three-digit code (idempotent)."""
    for code in range(100, 1000):
        if code not in httptools_impl.STATUS_LINE:
            httptools_impl.STATUS_LINE[code] = b"HTTP/1.1 %d %s\r\n" % (code, _phrase(code))
        if code not in h11_impl.STATUS_PHRASES:
            h11_impl.STATUS_PHRASES[code] = _phrase(code)


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Bounds on one request head."""

    request_line_bytes: int = 8192
    header_bytes: int = 32768
    header_count: int = 100
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


# Request fields that announce a body (RFC 9112 §6.3).
_BODY_FIELDS = frozenset({b"content-length", b"transfer-encoding"})


class _Deadline:
    """One re-armable timer of a connection (the head's, the body's)."""

    __slots__ = ("_callback", "_handle", "_loop", "_seconds")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, callback: Callable[[], None]
    ) -> None:
        self._loop, self._seconds, self._callback = loop, seconds, callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def arm(self) -> None:
        """(Re)start the countdown."""
        self.cancel()
        self._handle = self._loop.call_later(self._seconds, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()


class _Refused(Exception):
    """Raised from a parser callback: the head broke a limit (the answer is already set)."""


_TITLES = {
    408: ("request-timeout", "Request timeout", "the request head did not arrive in time"),
    # (408 for a body: the same problem type, its own detail)
    -408: ("request-timeout", "Request timeout", "the request body did not arrive in time"),
    414: ("uri-too-long", "URI too long", "the request target is over the edge's limit"),
    431: (
        "header-fields-too-large",
        "Request header fields too large",
        "the request's header fields are over the edge's limit",
    ),
}


class EdgeProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus ``HeadLimits`` (see the module docstring)."""

    limits = HeadLimits()
    hits: HitPath | None = None  # fresh hits answered here, before the ASGI app
    # Our own attributes in slots: uvicorn's protocol sets 27 of its own, and with ours in
    # the instance dict too it passes CPython's 30 shared keys, so that every attribute
    # access (theirs and ours, several dozen per request) is a hashed dict lookup.
    __slots__ = (
        "_answered",
        "_body_timer",
        "_bytes_left",
        "_connection_field",
        "_fields_left",
        "_head_timer",
        "_hit_at",
        "_idle",
        "_partial",
        "_pending",
        "_raw",
        "_refusal",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answered = False  # the current request was answered by ``hits``
        self._partial = False  # a request head has begun and is not complete yet
        self._pending = 0  # bytes received while this head was incomplete
        self._fields_left = 0  # header fields the current head may still have
        self._bytes_left = 0  # and their bytes
        self._refusal = 0
        self._head_timer = _Deadline(self.loop, self.limits.head_timeout_s, self._head_timeout)
        self._raw: list[tuple[bytes, bytes]] = []  # the current head's fields, lower-cased
        self._connection_field = False  # the current head has a Connection field
        self._hit_at = 0.0  # loop time of the last protocol-level hit
        self._idle: asyncio.TimerHandle | None = None  # the keep-alive clock after hits
        self._body_timer = _Deadline(self.loop, self.limits.body_timeout_s, self._body_timeout)

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._head_timer.cancel()
        self._body_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._partial and (
            self._pending > self.limits.header_bytes + self.limits.request_line_bytes
        ):
            self._refuse(431)
            return
        try:
            # Fed through our own copy of uvicorn's error handling: a refusal raised in a
            # parser callback surfaces as HttpParserCallbackError.
            if self.timeout_keep_alive_task is not None:
                self._unset_keepalive_if_required()
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._refusal:
                self._refuse(self._refusal)
                return
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._partial:
            # A head split over packets: its clock starts now. (One that arrives whole, the
            # usual case, completes during the feed above and costs no timer at all.)
            self._pending += len(data)
            if not self._head_timer.armed:
                self._head_timer.arm()

    # -- parser callbacks ------------------------------------------------------------------
    # The head is only collected here (target, lower-cased fields): uvicorn's scope, its
    # headers list and its cycle are built in ``_to_app``, only for a request the hit path
    # does not answer.
    def on_message_begin(self) -> None:
        self._partial = True
        self._answered = False
        self._fields_left = self.limits.header_count
        self._bytes_left = self.limits.header_bytes
        self.url = b""
        self._raw = []
        self._connection_field = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.request_line_bytes:
            self._refusal = 414
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields_left -= 1
        self._bytes_left -= len(name) + len(value) + 4  # ": " and CRLF
        if self._fields_left < 0 or self._bytes_left < 0:
            self._refusal = 431
            raise _Refused
        # Names lower-cased (the hit path compares them); values as llhttp gives them
        # (uvicorn drops their trailing whitespace when the request goes to the app).
        low = name.lower()
        if low == b"connection":
            self._connection_field = True
        self._raw.append((low, value))

    def on_headers_complete(self) -> None:
        self._partial = False
        self._pending = 0
        head_timer = self._head_timer
        if head_timer._handle is not None:
            head_timer.cancel()
        hits = self.hits
        if hits is None:
            self._to_app()
            return
        # A fresh hit is written straight to the transport (``edge.proxy.hitpath``; inline
        # here, one Python call less per hit). The request is the ASGI app's when it is not
        # a plain hit, not a kept-alive HTTP/1.1 request, behind an answer still being sent,
        # or when the client is not reading.
        cycle = self.cycle
        if (cycle is not None and not cycle.response_complete) or self.flow.write_paused:
            self._to_app()
            return
        parser = self.parser
        # Kept alive without a Connection field is HTTP/1.1 (llhttp refuses versions other
        # than 0.9, 1.0, 1.1 and 2.0, and keeps only 1.1 alive by default), so the version,
        # a string httptools formats per call, is only asked for when the field is there.
        if not parser.should_keep_alive() or (
            self._connection_field and parser.get_http_version() != "1.1"
        ):
            self._to_app()
            return
        out = hits.answer(parser.get_method(), self.url, self._raw)
        if out is None:
            self._to_app()
            return
        self._answered = True
        self.transport.write(out)
        # What uvicorn does when an answer is complete: count it, resume reading, and wait
        # for the next request no longer than the keep-alive timeout. (Reading is paused
        # only behind a pipelined app answer; the idle clock is one lazy timer, not one per
        # answer: see ``_idle_check``.)
        self.server_state.total_requests += 1
        if self.flow.read_paused:
            self.flow.resume_reading()
        self._hit_at = self.loop.time()
        if self._idle is None:
            self._idle = self.loop.call_later(self.timeout_keep_alive, self._idle_check)

    def _to_app(self) -> None:
        """Hand the collected head to uvicorn as its own callbacks would have: scope,
        headers, Expect, then its cycle and the ASGI task."""
        url = self.url
        super().on_message_begin()
        self.url = url
        on_header = super().on_header
        for name, value in self._raw:
            on_header(name, value)
        super().on_headers_complete()
        if self.cycle is not None:
            relay: Any = functools.partial(self._relay_interim, self.cycle)
            whole: Any = functools.partial(self._send_whole, self.cycle)
            self.scope["extensions"] = {INTERIM_EXTENSION: relay, WHOLE_EXTENSION: whole}
        if any(name in _BODY_FIELDS for name, _ in self.headers):
            self._body_timer.arm()

    def _relay_interim(self, cycle: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Write an interim response for ``cycle`` while its final answer has not started
        (only HTTP/1.1 clients get one, RFC 9110 §15.2); its hop-by-hop fields stay here."""
        if cycle.response_started or cycle.disconnected or self.transport.is_closing():
            return
        if cycle.scope.get("http_version") != "1.1" or not 100 <= status < 200:
            return
        named = connection_named(",".join(v.decode("latin-1") for k, v in headers
                                          if k.lower() == b"connection"))  # fmt: skip
        lines = [httptools_impl.STATUS_LINE[status]]
        for name, value in headers:
            low = name.lower()
            if low.decode("latin-1") not in HOP_BY_HOP and low.decode("latin-1") not in named:
                lines.append(b"%s: %s\r\n" % (low, value))
        self.transport.write(b"".join([*lines, b"\r\n"]))

    def _send_whole(
        self, cycle: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bool:
        """Answer ``cycle`` with one write: status line, ``headers`` (lower-case names, values
        checked by the caller; a ``content-length`` among them), body (empty for a HEAD);
        then complete the cycle as uvicorn's ``send`` does (keep-alive or close, the next
        pipelined request). False, having written nothing, when the answer has started, the
        client is gone, or the client is not reading (ASGI ``send`` waits for it)."""
        if cycle.response_started or cycle.disconnected or self.flow.write_paused:
            return False
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        parts = [httptools_impl.STATUS_LINE[status]]
        parts += [b"%s: %s\r\n" % kv for kv in headers]
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", body]
        self.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
        return True

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            if self._body_timer.armed:
                self._body_timer.arm()
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer._handle is not None:  # (armed only for a request with a body)
            self._body_timer.cancel()
        if not self._answered:
            super().on_message_complete()

    def _idle_check(self) -> None:
        """The keep-alive timeout after protocol-level hits: close the connection when it
        has been idle ``timeout_keep_alive`` since the last hit, else look again when it
        would have. A request in progress, or an app answer after the hits, has its own
        clock (the head timer, uvicorn's keep-alive task), so this one stops there."""
        self._idle = None
        if self.transport is None or self.transport.is_closing():
            return
        cycle = self.cycle
        if self._partial or self.timeout_keep_alive_task is not None:
            return
        if cycle is not None and not cycle.response_complete:
            return
        left = self._hit_at + self.timeout_keep_alive - self.loop.time()
        if left <= 0:
            self.timeout_keep_alive_handler()
        else:
            self._idle = self.loop.call_later(left, self._idle_check)

    # -- limits ----------------------------------------------------------------------------
    def _body_timeout(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()  # answered without the body (a 404, a 413): just close
            return
        self._refuse(408, for_body=True)

    def _head_timeout(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if not self._partial and self.cycle is not None:
            return  # no head in progress: idle keep-alive is uvicorn's timeout_keep_alive
        if self.cycle is not None and not self.cycle.response_complete:
            self._head_timer.arm()  # a pipelined head behind an answer still being sent
            return
        self._refuse(408)

    def _refuse(self, status: int, *, for_body: bool = False) -> None:
        """Answer ``status`` as problem+json and close the connection."""
        self._head_timer.cancel()
        self._body_timer.cancel()
        slug, title, detail = _TITLES[-status if for_body else status]
        body = Problem(status, slug, title, detail).encode()
        head = b"%scontent-type: application/problem+json\r\ncontent-length: %d\r\n" % (
            httptools_impl.STATUS_LINE[status],
            len(body),
        )
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def protocol_class(limits: HeadLimits, hits: HitPath | None = None) -> type[EdgeProtocol]:
    """An ``EdgeProtocol`` subclass bound to ``limits`` and ``hits`` (uvicorn takes a
    class)."""
    allow_every_status()
    return type("BoundEdgeProtocol", (EdgeProtocol,), {"limits": limits, "hits": hits})
