"""The protocol's one-write answer (``edge.proxy.upstream.WHOLE_EXTENSION``, used by rail
answers): byte for byte what uvicorn's own ASGI sender writes for the same answer, for GET,
HEAD, pipelined requests and ``Connection: close``. Two real uvicorn servers with the edge's
protocol on loopback, one app answering through the extension, the other through ``send``;
raw sockets, so the bytes compared are the wire's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from edge.proxy.protocol import HeadLimits, protocol_class
from edge.proxy.upstream import WHOLE_EXTENSION

pytestmark = pytest.mark.anyio

HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"private, no-store"),
    (b"set-cookie", b"p13n_sid=abc; Path=/; HttpOnly"),
    (b"date", b"Sun, 06 Dec 2026 22:00:00 GMT"),
]


def answer_app(use_whole: bool) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b'{"path":"%s"}' % scope["path"].encode()
        raw = [*HEADERS, (b"content-length", b"%d" % len(body))]
        if scope["method"] == "HEAD":
            body = b""
        whole = scope.get("extensions", {}).get(WHOLE_EXTENSION)
        if use_whole:
            assert whole is not None and whole(200, raw, body)
            return
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture
async def servers() -> AsyncIterator[tuple[int, int]]:
    """(port answering through the extension, port answering through ``send``)."""
    started, ports = [], []
    for use_whole in (True, False):
        config = uvicorn.Config(
            answer_app(use_whole),
            host="127.0.0.1",
            port=0,
            http=protocol_class(HeadLimits()),
            lifespan="off",
            log_level="warning",
            date_header=False,
            server_header=False,
        )
        sock = config.bind_socket()
        ports.append(sock.getsockname()[1])
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        started.append((server, asyncio.create_task(server.serve(sockets=[sock])), sock))
    for server, _, _ in started:
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield ports[0], ports[1]
    finally:
        for server, task, sock in started:
            server.should_exit = True
            await task
            sock.close()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


REQUESTS = [
    b"GET /p13n/v1/rail/home HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    b"HEAD /p13n/v1/rail/pdp HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    b"GET /p13n/v1/rail/cart HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
]


async def test_one_write_answers_are_uvicorns_answers_byte_for_byte(servers) -> None:
    whole, sent = servers
    pipelined = b"".join(REQUESTS)
    by_whole, by_send = await exchange(whole, pipelined), await exchange(sent, pipelined)
    assert by_whole == by_send
    assert [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", by_whole)] == [200, 200, 200]
    assert by_whole.count(b'{"path":') == 2  # (the HEAD's answer has no body)
    assert by_whole.endswith(b'connection: close\r\n\r\n{"path":"/p13n/v1/rail/cart"}')


async def test_an_http_1_0_client_gets_its_answer_and_the_connection_closed(servers) -> None:
    whole, sent = servers
    request = b"GET /p13n/v1/rail/home HTTP/1.0\r\nHost: shop.test\r\n\r\n"
    by_whole = await exchange(whole, request)
    assert by_whole == await exchange(sent, request)
    assert b"connection: close\r\n" in by_whole
