"""The rail preview: what a rail answers, drawn from the rail answer itself (each item's
name, picture and price as the catalog labels it, ``cache_keys.wire.labels``).

The console asks ``GET /v1/recommendations`` as any client would: without a shopper, the
anonymous answer; with ``user`` (a shopper id of either kind, admin only: the API checks
the service role), that shopper's personal answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from cache_keys.errors import WireError
from cache_keys.wire import parse_labels
from origin.console.api import ApiError
from origin.console.views import Ctx, page, render

__all__ = ["rails"]

SECTION = "merchandising"
PREVIEW_K = 12


def _tile(doc: Any) -> dict[str, Any] | None:
    """One rail item as the page shows it; None for what no edge would pass on."""
    if not isinstance(doc, dict) or not isinstance(doc.get("item"), str):
        return None
    try:
        name, image_url = parse_labels(doc, "item")
    except WireError:
        name, image_url = "", ""
    price = doc.get("price")
    return {
        "item": doc["item"],
        "name": name,
        "image_url": image_url,
        "price": price if isinstance(price, int | float) else None,
        "score": doc.get("score"),
        "reason": str(doc.get("reason", "")),
    }


@page(SECTION)
async def rails(request: Request, ctx: Ctx) -> Response:
    """Preview one route's rail, anonymous or for one shopper."""
    assert ctx.api is not None
    q = request.query_params
    route, user = q.get("route", "home").strip() or "home", q.get("user", "").strip()
    params = {"route": route, "k": str(PREVIEW_K), **({"user": user} if user else {})}
    tiles: list[dict[str, Any]] = []
    error = ""
    degraded = False
    try:
        answer = await ctx.api.get("/v1/recommendations?" + urlencode(params))
    except ApiError as exc:
        error = exc.detail
    else:
        tiles = [t for t in map(_tile, answer.get("items", [])) if t is not None]
        degraded = bool(answer.get("degraded"))
    return render(
        request, ctx, "rails.html", route=route, user=user, tiles=tiles, error=error,
        degraded=degraded,
    )  # fmt: skip
