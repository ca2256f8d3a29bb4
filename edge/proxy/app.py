"""The self-hosted edge as ASGI apps: the shopper-facing proxy and its admin app (metrics).

Rails (``GET /p13n/v1/rail/{route}``) go through the rail flow when the origin serves an
edge config and signing keys are set; every other request goes through the shared HTTP
cache. Long-lived parts (HTTP client, config, store, purge subscriber, heartbeat) live in the
``EdgeRuntime`` (``edge.proxy.runtime``) opened by the lifespan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from email.utils import formatdate
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from cache_keys.wire import join_fields, parse_edge_config
from edge.plan import serves_route
from edge.proxy.aggregate import WORKER_PATH, aggregate, scrape_all
from edge.proxy.answers import Answer, problem_answer
from edge.proxy.forwarding import ClientHop
from edge.proxy.metrics import Traffic, render
from edge.proxy.planes import rewrite_locations
from edge.proxy.runtime import EdgeRuntime
from edge.proxy.settings import ProxySettings
from edge.proxy.upstream import INTERIM_EXTENSION, INTERIM_RELAY, WHOLE_EXTENSION
from edge.request import rail_route

__all__ = ["DATE", "EdgeApp", "EdgeRuntime", "create_admin_app", "create_app", "request_headers"]

log = logging.getLogger("p13n.edge")

MAX_BODY_BYTES = 10 * 1024 * 1024
HELLO_PATH = "/__bench/hello"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _proxy(runtime: EdgeRuntime, scope: Scope, receive: Receive, send: Send) -> None:
    """Everything but answered rails: through the shared HTTP cache to the origin."""
    headers = _headers(scope)
    # The path as the client sent it (percent-encodings kept): the decoded one would turn
    # %3F into a query, %23 into a fragment and %2F into a separator on the way to the
    # origin, and share cache entries between different resources.
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"], safe=_PATH_SAFE)
    if not runtime.planes.forwards(path):
        detail = "this path is not served on the shopper port"
        await _send_problem(send, 404, "not-found", "Not found", detail)
        return
    query = scope["query_string"].decode("latin-1")
    body = await _read_body(receive)
    if body is _GONE:
        return  # the client left (or timed out) mid-body: nothing of it is forwarded
    if body is None:
        detail = f"request bodies are limited to {MAX_BODY_BYTES} bytes"
        await _send_problem(send, 413, "payload-too-large", "Payload too large", detail)
        return
    target = path + (f"?{query}" if query else "")
    method = scope["method"]
    client = scope.get("client")
    addr = client[0] if client else ""
    hop = ClientHop(addr, scope.get("scheme", "http"), headers.get("host", ""))
    # The protocol's relay of the origin's interim responses (103 Early Hints) to this client.
    relay = INTERIM_RELAY.set(scope.get("extensions", {}).get(INTERIM_EXTENSION))
    try:
        proxied = await runtime.http.handle(method, target, headers, body, hop)
    finally:
        INTERIM_RELAY.reset(relay)
    head = method == "HEAD"
    if proxied.wire is not None and not _has_location(proxied.headers):
        await _send_hit(send, proxied, proxied.wire, head=head)
        return
    out = rewrite_locations(proxied.with_headers(), runtime.settings.origin_url, hop)
    await _send(send, proxied.status, out, proxied.body, head=head)


def _has_location(headers: list[tuple[str, str]]) -> bool:
    return any(k in ("location", "content-location") for k, _ in headers)


async def _send_hit(
    send: Send, hit: Answer, wire: list[tuple[bytes, bytes]], *, head: bool
) -> None:
    """A fresh hit: the stored response's pre-encoded headers plus what is per answer."""
    raw = [
        *wire,
        (b"age", b"%d" % hit.age),
        _encoded("cache-status", hit.cache_status),
        (b"content-length", b"%d" % len(hit.body)),
    ]
    if not any(k == b"date" for k, _ in wire):
        raw.append((b"date", DATE.now()))
    await send({"type": "http.response.start", "status": hit.status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else hit.body})


def _headers(scope: Scope) -> dict[str, str]:
    return request_headers(scope["headers"])


def request_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers by name; ASGI servers hand names over lower-cased (the spec says so).
    A repeated field is kept whole, its lines comma-joined (``Cookie``: ``; ``) as the Workers
    runtime does, so the one opt-out rule (``cache_keys.wire.opted_out``) sees every
    ``Sec-GPC`` value on both edges and the origin gets every line it was sent."""
    out = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
    if len(out) != len(raw):  # (rare: the second pass costs nothing otherwise)
        lines: dict[str, list[str]] = {}
        for k, v in raw:
            lines.setdefault(k.decode("latin-1"), []).append(v.decode("latin-1"))
        for name, values in lines.items():
            if len(values) > 1:
                out[name] = "; ".join(values) if name == "cookie" else join_fields(values)
    return out


async def _answer_rail(runtime: EdgeRuntime, route: str, scope: Scope, send: Send) -> bool:
    """Answer a rail request through the decision core; False when personalization is off
    (no signing keys, or the origin says it serves no edge config): the request is then
    proxied. An origin not reached yet is not "off": the core answers with the fallback
    config, so shoppers get the default list (200) rather than a 502."""
    if runtime.rails is None:
        return False
    config = await runtime.config.current()
    if config is None:
        if runtime.config.absent:
            return False
        config = FALLBACK_CONFIG
    if not serves_route(config, route):
        return False
    try:
        status, out, body = await runtime.rails.answer(
            route, _headers(scope), scope["query_string"].decode("latin-1"), config
        )
    except Exception as exc:  # the adapters' own faults: still the default list, never a 5xx
        reply = runtime.rails.flow.last_resort(route, config, exc)
        status, out, body = 200, reply.headers, reply.answer.body.encode()
    raw = [_encoded(k, v) for k, v in out]
    raw += [(b"content-length", b"%d" % len(body)), (b"date", DATE.now())]
    if scope["method"] == "HEAD":
        body = b""
    traffic = runtime.traffic
    traffic.requests += 1
    traffic.bytes_sent += len(body)
    # One write from the protocol (``edge.proxy.upstream.WHOLE_EXTENSION``) when it offers
    # it: no per-header checks in uvicorn's sender, no second write for the body.
    whole = scope.get("extensions", {}).get(WHOLE_EXTENSION)
    if whole is not None and whole(status, raw, body):
        return True
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
    return True


_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def _encoded(name: str, value: str) -> tuple[bytes, bytes]:
    """A header pair as bytes, checked as uvicorn's sender checks it (a rail answer may be
    written without that sender); the shared ones (content type, cache control, a few
    hundred Cache-Status values) are encoded and checked once. Set-Cookie values are per
    shopper: never kept."""
    pair = _ENCODED.get((name, value))
    if pair is None:
        pair = (name.encode("latin-1"), value.encode("latin-1"))
        if HEADER_RE.search(pair[0]) or HEADER_VALUE_RE.search(pair[1]):
            raise ValueError("invalid header field in a rail answer")
        if name != "set-cookie":
            if len(_ENCODED) >= 4096:
                _ENCODED.clear()
            _ENCODED[(name, value)] = pair
    return pair


class _HttpDate:
    """The IMF-fixdate of the current second, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second, self._value = second, formatdate(second, usegmt=True).encode()
        return self._value


DATE = _HttpDate()
_PATH_SAFE = "/!$&'()*+,;=:@~-._"  # RFC 3986 pchar without percent-encoding
# The edge config to decide with before the origin was ever reached: no experiments, default
# route policies, no purges; its answers are the default list (degraded) until it is.
FALLBACK_CONFIG = parse_edge_config({"v": 1, "etag": '"edge-fallback"', "generated_at_ms": 0})


async def _send_problem(send: Send, status: int, slug: str, title: str, detail: str) -> None:
    """An RFC 9457 problem answered by the edge itself (never stored)."""
    problem = problem_answer(status, slug, title, detail)
    await _send(send, problem.status, problem.headers, problem.body)


_GONE = b"<gone>"  # (compared by identity: the client disconnected before its body ended)


async def _read_body(receive: Receive) -> bytes | None:
    """The request body; None when it is over ``MAX_BODY_BYTES``, ``_GONE`` when the client
    disconnected before it ended (a truncated body must never reach the origin)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _GONE
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes, *, head: bool = False
) -> None:
    """Send a whole response: our own Content-Length, and a Date when the answer has none
    (a stored response keeps its origin's Date; the server adds neither). For a HEAD the
    headers are the GET's, Content-Length included, and no body."""
    raw = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in headers
        if k not in ("content-length", "transfer-encoding", "connection")
    ]
    raw.append((b"content-length", b"%d" % len(body)))
    if not any(k == b"date" for k, _ in raw):
        raw.append((b"date", DATE.now()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})


def _counting(send: Send, traffic: Traffic) -> Send:
    """``send``, counting the request and its body bytes (the cost figures)."""
    traffic.requests += 1

    async def counted(message: Message) -> None:
        if message["type"] == "http.response.body":
            traffic.bytes_sent += len(message.get("body", b""))
        await send(message)

    return counted


class EdgeApp(Starlette):
    """The edge's Starlette app (lifespan, state). Every HTTP request is dispatched here
    without Starlette's router and middleware: rail requests (``GET /p13n/v1/rail/{route}``,
    the hot path) to the decision core, everything else to the shared cache, whatever its
    path looks like (a router would 404 paths it cannot match, such as an encoded newline).
    Failures are answered as problem+json here and logged without request data. Only the
    benchmark's hello route, when enabled, goes through Starlette's routing."""

    hello_path: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == self.hello_path:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        runtime: EdgeRuntime = self.state.edge
        method = scope["method"]
        if method in ("GET", "HEAD"):
            route = rail_route(scope["path"])
            # (a rail answer counts its own request and bytes: no counting wrapper per call)
            if route is not None and await _answer_rail(runtime, route, scope, send):
                return
        send = _counting(send, runtime.traffic)
        if method not in METHODS:
            detail = f"the edge forwards {', '.join(METHODS)}"
            await _send_problem(send, 405, "method-not-allowed", "Method not allowed", detail)
            return
        try:
            await _proxy(runtime, scope, receive, send)
        except Exception:  # never a bare traceback to a client; the log has it
            log.exception("proxied request failed")
            detail = "unexpected error; see the edge's log"
            await _send_problem(send, 500, "internal", "Internal error", detail)


def create_app(settings: ProxySettings, runtime: EdgeRuntime | None = None) -> EdgeApp:
    """The shopper-facing edge app."""

    @asynccontextmanager
    async def lifespan(app: EdgeApp) -> AsyncIterator[None]:
        rt = runtime or EdgeRuntime.open(settings)
        app.state.edge = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.close()

    app = EdgeApp(lifespan=lifespan)
    if settings.bench_hello:
        app.hello_path = HELLO_PATH
        app.router.routes.append(Route(HELLO_PATH, _hello, methods=["GET"]))
    return app


async def _hello(request: Request) -> Response:
    """The benchmark's baseline: hello world, same process and server settings."""
    return Response(b"hello, world", media_type="text/plain")


def create_admin_app(
    runtime_of: Callable[[], EdgeRuntime | None], peers: Sequence[str] = ()
) -> Starlette:
    """The admin app (separate port): ``/metrics`` (with ``peers``, the other workers' admin
    URLs: the sum over every worker, ``edge.proxy.aggregate``), ``/metrics/worker`` (this
    process's own figures) and ``/healthz``."""

    async def own(request: Request) -> Response:
        rt = runtime_of()
        if rt is None:
            return Response("edge not started\n", status_code=503)
        return Response(render(rt.collector()), media_type=METRICS_TYPE)

    async def metrics(request: Request) -> Response:
        rt = runtime_of()
        if rt is None or not peers:
            return await own(request)
        texts = await scrape_all(render(rt.collector()).decode(), peers)
        return Response(aggregate(texts), media_type=METRICS_TYPE)

    async def healthz(request: Request) -> Response:
        rt = runtime_of()
        return JSONResponse(
            {
                "status": "ok" if rt else "starting",
                "personalization": bool(rt and rt.rails and rt.config.config),
                "config_etag": rt.config.etag if rt else "",
            }
        )

    routes = [Route("/metrics", metrics), Route(WORKER_PATH, own), Route("/healthz", healthz)]
    return Starlette(routes=routes)


METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
