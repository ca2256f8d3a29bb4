"""Merchandising pages: find a sku, toggle its stock, change its price; push invalidations
and watch them reach the edges (the status page polls ``…/status`` until all have it)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cache_keys import hash_segment, is_hseg
from origin.catalog_records import SKU_RE
from origin.console.api import AdminApi, ApiError
from origin.console.forms import FormError, number
from origin.console.views import Ctx, page, redirect, render
from origin.state import get_state

__all__ = [
    "catalog",
    "invalidation",
    "invalidation_status",
    "invalidations",
    "purge_log",
    "push",
    "update_item",
]

SECTION = "merchandising"
# More digits than any stock the API takes (up to 1e9); longer text is refused before int().
MAX_STOCK_DIGITS = 12
KINDS = ("sku", "cat", "seg", "all")
_INV_RE = re.compile(r"inv-[0-9]{1,20}-[0-9a-f]{1,16}")
NOTICES = {
    "stock": "Stock saved.",
    "price": "Price saved.",
    "out": "Out of stock: a hard purge of the sku was sent to the edges.",
}


def _api(ctx: Ctx) -> AdminApi:
    assert ctx.api is not None
    return ctx.api


async def _item(api: AdminApi, sku: str) -> dict[str, Any] | None:
    try:
        item: dict[str, Any] = await api.get(f"/v1/admin/catalog/{quote(sku)}")
    except ApiError as exc:
        if exc.status in (400, 404):
            return None
        raise
    return item


async def _search(api: AdminApi, text: str) -> list[dict[str, Any]]:
    """Catalog entries whose sku or name starts with ``text``, any case."""
    doc = await api.get(f"/v1/admin/catalog?q={quote(text[:64], safe='')}&limit=20")
    items: list[dict[str, Any]] = doc["items"]
    return items


@page(SECTION)
async def catalog(request: Request, ctx: Ctx) -> Response:
    """Find a sku (exact, else by prefix of its sku or name, any case); show its facts with
    the stock and price forms, or the matches to choose from."""
    sku = request.query_params.get("sku", "").strip()
    api = _api(ctx)
    item = await _item(api, sku) if sku else None
    matches: list[dict[str, Any]] = []
    if sku and item is None:
        matches = await _search(api, sku)
        if len(matches) == 1 or (matches and matches[0]["sku"].casefold() == sku.casefold()):
            item, sku = matches[0], matches[0]["sku"]  # "sku-0042" is SKU-0042
            matches = []
    q = request.query_params
    return render(
        request, ctx, "catalog.html", sku=sku, item=item, matches=matches,
        notice=NOTICES.get(q.get("done", "")), invalidation=q.get("inv", ""),
    )  # fmt: skip


def _change(ctx: Ctx, item: dict[str, Any]) -> tuple[dict[str, Any], str]:
    entry = {k: item[k] for k in ("category", "price", "stock", "durable")}
    entry.update({k: item[k] for k in ("name", "image_url", "category_path") if item.get(k)})
    op = ctx.value("op")
    if op == "stock":
        raw = ctx.value("stock")
        if not raw.isdigit() or len(raw) > MAX_STOCK_DIGITS:
            raise ApiError(400, {"detail": "stock must be a whole number", "field": "stock"})
        entry["stock"] = int(raw)
    elif op == "price":
        try:
            entry["price"] = number(ctx.value("price"), "price")
        except FormError as exc:
            raise ApiError(400, {"detail": f"price: {exc}", "field": "price"}) from None
    else:
        raise ApiError(400, {"detail": "unknown change", "field": "op"})
    return entry, op


@page(SECTION)
async def update_item(request: Request, ctx: Ctx) -> Response:
    """Change one sku's stock or price through the catalog API."""
    sku = str(request.path_params["sku"])
    api = _api(ctx)
    item = await _item(api, sku) if SKU_RE.fullmatch(sku) else None
    if item is None:
        raise ApiError(404, {"detail": "no such sku in the catalog"})
    try:
        entry, op = _change(ctx, item)
        answer = await api.call("PUT", f"/v1/admin/catalog/{quote(sku)}", entry)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        errors = {exc.field or "": exc.detail}
        return render(request, ctx, "catalog.html", 400, sku=sku, item=item, errors=errors)
    inv = answer.get("invalidation")
    done = "out" if inv else op
    suffix = f"&inv={quote(inv)}" if inv else ""
    return redirect(f"/console/catalog?sku={quote(sku)}&done={done}{suffix}")


@page(SECTION)
async def invalidations(request: Request, ctx: Ctx) -> Response:
    """The push form."""
    return render(request, ctx, "invalidations.html", values={"kind": "sku", "mode": "soft"})


@page(SECTION)
async def purge_log(request: Request, ctx: Ctx) -> Response:
    """The purge log, newest first, 20 a page, with each purge's progress at the edges."""
    raw = request.query_params.get("offset", "0")
    offset = int(raw) if raw.isdigit() and len(raw) < 10 else 0
    doc = await _api(ctx).get(f"/v1/admin/invalidations?limit=20&offset={offset}")
    return render(request, ctx, "purge_log.html", log=doc)


def _tag(kind: str, value: str, segment_key: bytes) -> str:
    if kind == "all":
        return "all"
    if kind == "seg" and value and not is_hseg(value):
        value = hash_segment(value, segment_key)  # segment names never leave the origin
    return f"{kind}:{value}"


@page(SECTION)
async def push(request: Request, ctx: Ctx) -> Response:
    """Push an invalidation, then watch its status."""
    kind, mode = ctx.value("kind"), ctx.value("mode")
    values = {f: ctx.value(f) for f in ("kind", "value", "mode", "reason")}
    if kind not in KINDS or (kind != "all" and not ctx.value("value")):
        errors = {"value": "choose what to invalidate: a sku, a category, a segment or all"}
        return render(request, ctx, "invalidations.html", 400, values=values, errors=errors)
    if kind == "all" and ctx.value("confirm") != "everything":
        # A second step, on the server: purging everything needs the word typed back.
        wrong = bool(ctx.value("confirm"))
        errors = {"confirm": "type everything to confirm"} if wrong else {}
        status = 400 if wrong else 200
        return render(request, ctx, "purge_confirm.html", status, values=values, errors=errors)
    tag = _tag(kind, ctx.value("value"), get_state(request).settings.segment_key)
    body = {"tags": [tag], "mode": mode, "reason": ctx.value("reason")}
    try:
        record = await _api(ctx).post("/v1/admin/invalidations", body)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        field = "value" if exc.field.startswith("tags") else exc.field
        errors = {field: exc.detail}
        return render(request, ctx, "invalidations.html", 400, values=values, errors=errors)
    return redirect(f"/console/invalidations/{record['id']}")


def _inv_id(request: Request) -> str:
    inv_id = str(request.path_params["id"])
    if not _INV_RE.fullmatch(inv_id):
        raise ApiError(404, {"detail": "no such invalidation"})
    return inv_id


@page(SECTION)
async def invalidation(request: Request, ctx: Ctx) -> Response:
    """One invalidation and how many live edges have applied it."""
    record = await _api(ctx).get(f"/v1/admin/invalidations/{_inv_id(request)}")
    return render(request, ctx, "invalidation.html", inv=record)


@page(SECTION)
async def invalidation_status(request: Request, ctx: Ctx) -> Response:
    """The status as JSON, for the page's polling script."""
    record = await _api(ctx).get(f"/v1/admin/invalidations/{_inv_id(request)}")
    return JSONResponse({"state": record["state"], "edges": record["edges"]})
