"""Limits on the shopper port of a served ``p13n edge`` (a real uvicorn process): request
target length (414), header bytes and count (431), a slow or absent request head or body
(408), idle keep-alive connections closed. Raw sockets, so the bytes on the wire are exactly the
test's; every wait is bounded by a socket timeout, nothing is timed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.support.servers import PlainEdgeProcess

LIMITS = {
    "P13N_EDGE_MAX_REQUEST_LINE_BYTES": "1024",
    "P13N_EDGE_MAX_HEADER_BYTES": "4096",
    "P13N_EDGE_MAX_HEADERS": "30",
    "P13N_EDGE_HEAD_TIMEOUT_S": "0.5",
    "P13N_EDGE_IDLE_TIMEOUT_S": "1",
    "P13N_EDGE_BODY_TIMEOUT_S": "0.5",
}


@pytest.fixture(scope="module")
def limited_edge(
    make_httpserver: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlainEdgeProcess]:
    """One edge with small limits in front of pytest-httpserver, for the whole module."""
    origin = make_httpserver.url_for("").rstrip("/")
    with PlainEdgeProcess(origin, LIMITS, log_dir=tmp_path_factory.mktemp("edge")) as edge:
        yield edge


@pytest.fixture
def ok_origin(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/ok").respond_with_data("fine")
    return httpserver


def exchange(edge: PlainEdgeProcess, raw: bytes, timeout_s: float = 10) -> bytes:
    """Send ``raw`` and read until the edge closes the connection."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=timeout_s) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_problem(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/problem+json" in head.lower(), head
    return status, json.loads(body)


def request(path: str = "/ok", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: shop.test\r\n" + extra + b"\r\n"


def test_requests_within_the_limits_pass(limited_edge, ok_origin) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    reply = exchange(limited_edge, request(extra=headers + b"Connection: close\r\n"))
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"fine")


def test_a_long_request_target_is_414(limited_edge, ok_origin) -> None:
    status, problem = status_and_problem(exchange(limited_edge, request("/ok?" + "a" * 2000)))
    assert status == 414 and problem["status"] == 414
    assert not any(req.path == "/ok" for req, _ in ok_origin.log)


def test_too_many_header_bytes_is_431(limited_edge, ok_origin) -> None:
    status, problem = status_and_problem(
        exchange(limited_edge, request(extra=b"X-Big: " + b"b" * 8000 + b"\r\n"))
    )
    assert status == 431 and problem["type"].endswith("header-fields-too-large")
    assert not any(req.path == "/ok" for req, _ in ok_origin.log)


def test_too_many_header_fields_is_431(limited_edge, ok_origin) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(40))
    status, _ = status_and_problem(exchange(limited_edge, request(extra=headers)))
    assert status == 431


def test_a_huge_header_in_transit_is_refused_not_buffered(limited_edge, ok_origin) -> None:
    """8 MB of one header, never finished: the edge answers or closes long before."""
    with socket.create_connection(("127.0.0.1", limited_edge.port), timeout=10) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: shop.test\r\nX-Huge: ")
        sent, refused = 0, False
        try:
            while sent < 8 * 1024 * 1024:
                sock.sendall(b"h" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        assert refused or sock.recv(65536).startswith(b"HTTP/1.1 431 ")
    assert sent < 8 * 1024 * 1024
    assert not any(req.path == "/ok" for req, _ in ok_origin.log)


def test_a_slow_request_head_is_408_and_closed(limited_edge, ok_origin) -> None:
    with socket.create_connection(("127.0.0.1", limited_edge.port), timeout=10) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: shop.test\r\n")  # ... and nothing more
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status, problem = status_and_problem(reply)
    assert status == 408 and problem["type"].endswith("request-timeout")


def test_a_connection_that_sends_nothing_is_closed(limited_edge) -> None:
    reply = exchange(limited_edge, b"")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408 ")


def test_an_idle_keep_alive_connection_is_closed(limited_edge, ok_origin) -> None:
    with socket.create_connection(("127.0.0.1", limited_edge.port), timeout=10) as sock:
        sock.sendall(request())
        first = b""
        while not first.endswith(b"fine"):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        # kept alive, then closed by the edge after the idle timeout: recv sees EOF
        assert sock.recv(65536) == b""
    assert limited_edge.poll() is None


def test_an_idle_connection_after_protocol_level_hits_is_closed(limited_edge, httpserver) -> None:
    # Hits answered in the protocol layer keep one lazy idle clock per connection instead
    # of a timer per answer (``EdgeProtocol._idle_check``): the connection still closes.
    httpserver.expect_request("/cached").respond_with_data(
        "kept", headers={"Cache-Control": "max-age=60"}
    )
    with socket.create_connection(("127.0.0.1", limited_edge.port), timeout=10) as sock:
        for _ in range(3):  # stored by the first, answered by the protocol after that
            sock.sendall(request("/cached"))
            reply = b""
            while not reply.endswith(b"kept"):
                reply += sock.recv(65536)
        assert b"cache-status: p13n-edge; hit" in reply
        assert sock.recv(65536) == b""  # closed after the idle timeout
    assert limited_edge.poll() is None


def test_expect_100_continue_still_reaches_uvicorn(limited_edge, ok_origin) -> None:
    # The head is collected in the edge's own callbacks and handed to uvicorn only for the
    # app (``EdgeProtocol._to_app``): its Expect handling must still see the field.
    head = b"POST /ok HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\n"
    with socket.create_connection(("127.0.0.1", limited_edge.port), timeout=10) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"body")
        reply = b""
        while not reply.endswith(b"fine"):
            reply += sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ")


def post(body: bytes, length: int) -> bytes:
    return b"POST /ok HTTP/1.1\r\nHost: shop.test\r\nContent-Length: %d\r\n\r\n%s" % (length, body)


def test_a_whole_request_body_is_forwarded(limited_edge, ok_origin) -> None:
    reply = exchange(
        limited_edge,
        post(b"0123456789", 10).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1),
    )
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"fine")
    assert [req.get_data() for req, _ in ok_origin.log if req.method == "POST"] == [b"0123456789"]


def test_a_stalled_request_body_is_408_and_nothing_is_forwarded(limited_edge, ok_origin) -> None:
    """10 of 100 announced bytes, then nothing: 408 and closed (RFC 9110 §15.5.9); the
    origin never sees a truncated body."""
    status, problem = status_and_problem(exchange(limited_edge, post(b"0123456789", 100)))
    assert status == 408 and problem["detail"] == "the request body did not arrive in time"
    assert not any(req.method == "POST" for req, _ in ok_origin.log)
    # the edge is still serving
    assert exchange(limited_edge, request(extra=b"Connection: close\r\n")).endswith(b"fine")


def test_a_stalled_chunked_body_is_408(limited_edge, ok_origin) -> None:
    head = b"POST /ok HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _ = status_and_problem(exchange(limited_edge, head + b"5\r\nhello\r\n"))
    assert status == 408
    assert not any(req.method == "POST" for req, _ in ok_origin.log)
