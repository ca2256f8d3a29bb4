"""Catalog search (merchandiser role): ``GET /v1/admin/catalog?q=sku-00&limit=20``.

Prefix match, case-insensitive, on the sku and on the product's ``name``: ``sku-0042``
finds ``SKU-0042`` (purges fold tags to lower case, so people type skus that way), ``whole``
finds "Whole milk 1 l". Exact sku matches first, then by sku. Admin-only and bounded: the
catalog hash is scanned once per search (``HSCAN``), at most ``SCAN_MAX`` entries.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from origin.admin.base import ADMIN_BUDGET_S, query
from origin.auth import require
from origin.catalog_records import decode_entry, encode_entry
from origin.errors import BadRequest
from origin.state import AppState, get_state

__all__ = ["matches", "routes", "search"]

ROLES = ("merchandiser",)
MAX_Q = 64
MAX_LIMIT = 100
SCAN_MAX = 200_000


def matches(q: str, sku: str, name: str) -> bool:
    """Whether ``q`` is a case-insensitive prefix of the sku or of the name (or of a word of it).

    >>> matches("sku-00", "SKU-0042", ""), matches("milk", "A-1", "Whole Milk 1 l")
    (True, True)
    """
    q = q.casefold()
    if sku.casefold().startswith(q):
        return True
    folded = name.casefold()
    return folded.startswith(q) or any(w.startswith(q) for w in folded.split())


async def search(state: AppState, q: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` catalog entries matching ``q``, exact sku first, then by sku."""

    async def scan() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        seen = 0
        async for field, raw in state.store.client.hscan_iter(state.keys.catalog, count=1000):
            seen += 1
            if seen > SCAN_MAX:
                break
            sku = field.decode() if isinstance(field, bytes) else str(field)
            entry = decode_entry(raw)
            if entry is not None and matches(q, sku, entry.name):
                found.append({"sku": sku, **orjson.loads(encode_entry(entry))})
        return found

    found = await state.store.run("catalog_search", scan(), budget_s=ADMIN_BUDGET_S)
    found.sort(key=lambda d: (d["sku"].casefold() != q.casefold(), d["sku"]))
    out: list[dict[str, Any]] = found[:limit]
    return out


async def search_endpoint(request: Request) -> Response:
    """``GET /v1/admin/catalog?q=&limit=``."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    params = query(request, {"q", "limit"})
    q = params.get("q", "")
    if not 0 < len(q) <= MAX_Q:
        raise BadRequest(f"q must be 1 to {MAX_Q} characters", field="q")
    raw = params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    items = await search(state, q, int(raw))
    return Response(
        orjson.dumps({"q": q, "items": items}),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def routes() -> list[BaseRoute]:
    """Catalog search routes."""
    return [Route("/v1/admin/catalog", search_endpoint, methods=["GET"])]
