"""A small real origin for the edge tests: it stands in for the origin of issue 4 (not built
yet) and speaks the same wire documents (``cache_keys.wire``).

Served by uvicorn on 127.0.0.1 in a process of its own (``python -m uvicorn
tests.support.standin_origin:app``); ``STANDIN_SEGMENT_KEYS`` holds the signing keys
(``kid:secret``, as the edge's ``SEGMENT_KEYS``).

Feeds: ``/v1/edge/config``, ``/v1/segments/{hseg}/list?variant=``, ``/v1/recommendations``,
``/v1/segment-token``, ``/v1/events`` (collector), and ``/v1/anything-else`` answering its
own path (to see pass-through). Test controls under ``/_test/``: set the config, set the
segment of a shopper, set a list, change the mode (``ok``, ``slow`` with a delay, ``down``
answering 503, ``junk`` answering 200 with a body that is not JSON), read the request counts,
the traces seen per feed and the received events, reset.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cache_keys.segments import parse_hseg
from cache_keys.tokens import KeyRing, SigningKey, sign_segment
from cache_keys.wire import SHOPPER_COOKIE, parse_cookie_header, parse_edge_config

CATEGORIES = ("dairy", "bakery", "produce", "snacks", "drinks", "frozen")


def _keyring() -> KeyRing:
    kid, _, secret = os.environ.get(
        "STANDIN_SEGMENT_KEYS", "k1:standin-secret-0123456789"
    ).partition(":")
    return KeyRing(SigningKey(kid, secret.encode()))


def default_list_items(variant: str, n: int = 40) -> list[dict[str, Any]]:
    """A deterministic list: ``<variant>-<i>`` with falling scores over six categories; even
    items carry catalog labels (a name and an image), odd ones none."""
    return [
        {
            "item": f"{variant[:4].upper()}-{i:03d}",
            "score": round(1.0 - i / (n + 1), 4),
            "category": CATEGORIES[i % len(CATEGORIES)],
            "price": float(1 + i % 9),
            "in_stock": True,
            "durable": i % 10 == 9,
            **(_labels(f"{variant[:4].upper()}-{i:03d}") if i % 2 == 0 else {}),
        }
        for i in range(n)
    ]


def _labels(item: str) -> dict[str, str]:
    return {"name": f"Item {item}", "image_url": f"https://img.shop.example/{item}.jpg"}


class State:
    """Everything the stand-in remembers; reset between tests."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.config: dict[str, Any] = {"v": 1, "etag": '"cfg-0"', "generated_at_ms": 0}
        self.segments: dict[str, str] = {}  # shopper id -> hseg
        self.lists: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.mode = "ok"
        self.delay_ms = 0
        self.counts: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []
        self.event_posts = 0
        self.seen_cookies: list[str] = []
        self.seen_traces: list[str] = []  # traceparent of each segment-list request
        self.traces: list[list[str]] = []  # [feed, traceparent] of every feed request
        self.seen_site_keys: list[str] = []  # X-P13N-Site-Key of each event post


STATE = State()
KEYS = _keyring()


async def _gate(name: str, request: Request | None = None) -> Response | None:
    STATE.counts[name] += 1
    if request is not None:
        STATE.traces.append([name, request.headers.get("traceparent", "")])
    if STATE.mode == "down":
        return JSONResponse({"title": "down for the test"}, status_code=503)
    if STATE.mode == "junk" and name != "config":
        return Response(b"<html>not json</html>", media_type="application/json")
    if STATE.mode == "slow":
        await asyncio.sleep(STATE.delay_ms / 1000)
    return None


async def edge_config(request: Request) -> Response:
    if (r := await _gate("config")) is not None:
        return r
    return JSONResponse(STATE.config, headers={"etag": STATE.config.get("etag", '"x"')})


async def segment_list(request: Request) -> Response:
    if (r := await _gate("list", request)) is not None:
        return r
    STATE.seen_traces.append(request.headers.get("traceparent", ""))
    hseg = parse_hseg(request.path_params["hseg"])
    variant = request.query_params.get("variant", "control")
    items = STATE.lists.get((hseg, variant)) or default_list_items(variant)
    doc = {
        "v": 1,
        "hseg": hseg,
        "variant": variant,
        "etag": f'"l-{variant}-{len(items)}"',
        "generated_at_ms": 0,
        "items": items,
    }
    return JSONResponse(doc)


def _shopper(request: Request) -> str | None:
    cookie = request.headers.get("cookie", "")
    STATE.seen_cookies.append(cookie)
    return parse_cookie_header(cookie).get(SHOPPER_COOKIE.name)


async def segment_token(request: Request) -> Response:
    if (r := await _gate("segment-token", request)) is not None:
        return r
    shopper = _shopper(request)
    hseg = STATE.segments.get(shopper or "")
    if hseg is None:
        return JSONResponse({"title": "unknown shopper"}, status_code=404)
    expires = int(request.query_params.get("expires_at_s", "0")) or 4_000_000_000
    return JSONResponse(
        {"v": 1, "token": sign_segment(parse_hseg(hseg), expires, KEYS), "expires_at_s": expires}
    )


async def recommendations(request: Request) -> Response:
    if (r := await _gate("recommendations", request)) is not None:
        return r
    shopper = _shopper(request)
    k = int(request.query_params.get("k", "5"))
    items = [
        {"item": f"PERS-{i:03d}", "score": 1.0 - i / 100, "reason": "personal"} for i in range(k)
    ]
    if items:  # the first one as the origin labels catalog items
        items[0] |= {**_labels("PERS-000"), "price": 4.5}
    return JSONResponse({"v": 1, "items": items, "variants": {}, "degraded": shopper is None})


async def alt_recommendations(request: Request) -> Response:
    if (r := await _gate("alt-recommendations", request)) is not None:
        return r
    items = [{"item": "ALT-001", "score": 1.0, "reason": "alt-backend"}]
    return JSONResponse({"v": 1, "items": items})


async def events(request: Request) -> Response:
    STATE.counts["events"] += 1
    STATE.seen_site_keys.append(request.headers.get("x-p13n-site-key", ""))
    doc = await request.json()
    STATE.event_posts += 1
    STATE.events.extend(doc["events"])
    return JSONResponse({"accepted": len(doc["events"])}, status_code=202)


async def passthrough(request: Request) -> Response:
    STATE.counts["passthrough"] += 1
    return JSONResponse({"origin_saw": request.url.path, "query": request.url.query})


async def control(request: Request) -> Response:
    what = request.path_params["what"]
    if what == "stats":
        return JSONResponse(
            {
                "counts": dict(STATE.counts),
                "events": STATE.events,
                "event_posts": STATE.event_posts,
                "seen_cookies": STATE.seen_cookies,
                "seen_traces": STATE.seen_traces,
                "traces": STATE.traces,
                "seen_site_keys": STATE.seen_site_keys,
            }
        )
    doc = await request.json()
    if what == "reset":
        STATE.reset()
    elif what == "config":
        parse_edge_config(doc)  # only valid documents: the edge must never be fed junk here
        STATE.config = doc
    elif what == "segment":
        STATE.segments[doc["shopper"]] = doc["hseg"]
    elif what == "list":
        STATE.lists[(doc["hseg"], doc["variant"])] = doc["items"]
    elif what == "mode":
        STATE.mode = doc["mode"]
        STATE.delay_ms = int(doc.get("delay_ms", 0))
    else:
        return JSONResponse({"title": "unknown control"}, status_code=404)
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/v1/edge/config", edge_config),
        Route("/v1/segments/{hseg}/list", segment_list),
        Route("/v1/segment-token", segment_token),
        Route("/v1/recommendations", recommendations),
        Route("/v2/alt-recommendations", alt_recommendations),
        Route("/v1/events", events, methods=["POST"]),
        Route("/_test/{what}", control, methods=["GET", "POST"]),
        Route("/{rest:path}", passthrough, methods=["GET", "POST"]),
    ]
)
