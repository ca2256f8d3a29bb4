"""Catalog API (merchandiser role): one sku, or a bulk import from CSV or JSON Lines.

- ``PUT /v1/admin/catalog/{sku}`` ``{"stock": 0, "price": 2.5, "category": "dairy",
  "durable": false}`` (or ``"repurchasable": true``);
- ``GET /v1/admin/catalog/{sku}``;
- ``POST /v1/admin/catalog`` with ``text/csv`` (header ``sku,stock,price,category,durable``,
  optionally ``name,image_url,category_path``)
  or ``application/x-ndjson`` / ``application/jsonl`` (one object with ``sku`` per line).
  Every row is validated before anything is written; an error names its line.

A sku out of stock and not yet in the item mask triggers a hard invalidation of that sku by
itself (in a bulk import, one invalidation for all such skus); a restocked sku leaves the
mask. The condition is the stored state, not the change, so a retried write whose purge was
lost (Redis failed between the catalog write and the purge) makes the purge. The catalog write
and the mask entry are not one transaction on purpose: the mask entry is the purge's record
of being done (generations bumped, invalidation recorded); the origin itself stops
recommending the sku as soon as the catalog says stock 0.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys.wire.purge import MAX_PURGE_TAGS
from origin.admin.base import audit, now_ms, transact
from origin.admin.invalidations import invalidate
from origin.auth import Caller, require
from origin.body import read_json
from origin.catalog_records import CatalogEntry, decode_entry, encode_entry, parse_entry, parse_sku
from origin.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable
from origin.state import AppState, get_state

__all__ = ["routes"]

ROLES = ("merchandiser",)
CHUNK = 500
MAX_ROWS = 200_000
_CSV_TYPES = frozenset({"text/csv"})
_JSONL_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})


def _json(doc: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(doc), status_code=status, media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


def _view(entry: CatalogEntry | None) -> dict[str, Any] | None:
    return None if entry is None else orjson.loads(encode_entry(entry))


def _needs_purge(after: CatalogEntry, masked: float | None) -> bool:
    # From the state, not the change: out of stock and not yet in the mask. The mask entry is
    # written by the purge's own transaction, so a purge lost after the catalog write (Redis
    # failed in between) is made by the retry, which finds stock 0 but no mask entry.
    return not after.in_stock and masked is None


async def _apply(
    state: AppState, caller: Caller, rows: list[tuple[str, CatalogEntry]]
) -> tuple[list[str], list[str], dict[str, CatalogEntry | None]]:
    """Write ``rows`` in one transaction; returns skus gone out of stock, restocked, befores."""
    keys = state.keys
    skus = [s for s, _ in rows]

    async def read(pipe: Pipeline) -> tuple[dict[str, CatalogEntry | None], list[Any]]:
        raw = await pipe.hmget(keys.catalog, skus)
        masked = await pipe.zmscore(keys.item_mask, skus)
        return {s: decode_entry(r) for s, r in zip(skus, raw, strict=True)}, masked

    def write(
        pipe: Pipeline, current: tuple[dict[str, CatalogEntry | None], list[Any]]
    ) -> tuple[Any, ...]:
        befores, masked = current
        out, back = [], []
        pipe.hset(keys.catalog, mapping={s: encode_entry(e) for s, e in rows})
        for (sku, after), score in zip(rows, masked, strict=True):
            before = befores[sku]
            if _needs_purge(after, score):
                out.append(sku)
            elif after.in_stock and before is not None and not before.in_stock:
                back.append(sku)
            audit(
                pipe,
                state,
                caller,
                "catalog.put",
                f"sku:{sku}",
                before=_view(before),
                after=_view(after),
            )
        if back:
            pipe.zrem(keys.item_mask, *back)
        return out, back, befores

    out, back, befores = await transact(
        state, "catalog_put", [keys.catalog, keys.item_mask], read, write
    )
    state.caches.forget_items(skus)
    return out, back, befores


async def _out_of_stock(state: AppState, caller: Caller, skus: list[str]) -> list[str]:
    ids = []
    for i in range(0, len(skus), MAX_PURGE_TAGS):
        chunk = skus[i : i + MAX_PURGE_TAGS]
        tags = [f"sku:{s.lower()}" for s in chunk]
        record = await invalidate(state, caller, tags, chunk, mode="hard", reason="out of stock")
        ids.append(record["id"])
    return ids


async def put_item(request: Request) -> Response:
    """Create or replace one sku."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    sku = parse_sku(str(request.path_params["sku"]))
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    entry = parse_entry(doc, now_ms(state))
    if isinstance(doc, dict) and doc.get("sku", sku) != sku:
        raise Unprocessable("sku in the body differs from the path", field="sku")
    out, back, befores = await _apply(state, caller, [(sku, entry)])
    ids = await _out_of_stock(state, caller, out)
    return _json(
        {
            "sku": sku,
            "before": _view(befores.get(sku)),
            "after": _view(entry),
            "invalidation": ids[0] if ids else None,
            "unmasked": bool(back),
        }
    )


async def get_item(request: Request) -> Response:
    """One sku."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    sku = parse_sku(str(request.path_params["sku"]))
    raw = await state.store.run("catalog_get", state.store.client.hget(state.keys.catalog, sku))
    entry = decode_entry(raw)
    if entry is None:
        raise NotFound(f"no sku {sku!r} in the catalog", field="sku")
    return _json({"sku": sku, **orjson.loads(encode_entry(entry))})


def _rows_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    # newline="": the reader itself ends records at \n, \r\n or a lone \r (the csv
    # module's rule); a stray character it cannot place is csv.Error, a 400 naming the line.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _csv_docs(reader)
    except csv.Error as exc:
        n = reader.line_num + 1  # the line being read
        raise BadRequest(f"line {n}: not CSV: {exc}", field=f"line {n}") from exc


def _csv_docs(reader: csv.DictReader[str]) -> list[tuple[int, dict[str, Any]]]:
    need = {"sku", "stock", "price", "category"}
    if reader.fieldnames is None or need - set(reader.fieldnames):
        raise BadRequest(f"the CSV header must name {sorted(need)} (and durable)", field="line 1")
    rows = []
    for n, row in enumerate(reader, start=2):
        if None in row:  # DictReader's key for fields past the header's (once ignored)
            raise BadRequest(f"line {n}: more fields than the header names", field=f"line {n}")
        doc: dict[str, Any] = {"sku": row["sku"], "category": row["category"]}
        try:
            doc["stock"] = int(row["stock"])
            doc["price"] = float(row["price"])
        except (TypeError, ValueError) as exc:
            raise BadRequest(
                f"line {n}: stock and price must be numbers", field=f"line {n}"
            ) from exc
        flag = (row.get("durable") or "").strip().lower()
        if flag not in ("", "true", "false", "1", "0", "yes", "no"):
            raise BadRequest(f"line {n}: durable must be true or false", field=f"line {n}")
        doc["durable"] = flag in ("true", "1", "yes")
        for name in ("name", "image_url", "category_path"):
            if row.get(name):
                doc[name] = row[name]
        rows.append((n, doc))
    return rows


def _rows_jsonl(text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((n, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"line {n}: not JSON ({exc})", field=f"line {n}") from exc
    return rows


async def _body_text(request: Request, limit: int) -> str:
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"import is over the {limit}-byte limit")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8-sig")  # spreadsheets save CSV with a BOM
    except UnicodeDecodeError as exc:
        raise BadRequest("import must be UTF-8 text", field="$") from exc


async def bulk_import(request: Request) -> Response:
    """Validate every row, then write in chunks; out-of-stock skus are purged hard."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _CSV_TYPES | _JSONL_TYPES:
        raise BadRequest("content-type must be text/csv or application/x-ndjson", field="$")
    text = await _body_text(request, state.settings.max_import_bytes)
    raw_rows = _rows_csv(text) if ctype in _CSV_TYPES else _rows_jsonl(text)
    if not 0 < len(raw_rows) <= MAX_ROWS:
        raise BadRequest(f"an import holds 1 to {MAX_ROWS} rows", field="$")
    ms, rows, seen = now_ms(state), [], set()
    for n, doc in raw_rows:
        sku = doc.get("sku") if isinstance(doc, dict) else None
        if not isinstance(sku, str):
            raise BadRequest(f"line {n}: sku is missing", field=f"line {n}")
        try:
            rows.append((parse_sku(sku), parse_entry(doc, ms)))
        except BadRequest as exc:
            raise BadRequest(f"line {n}: {exc.detail}", field=f"line {n}") from exc
        if sku in seen:
            raise Unprocessable(f"line {n}: sku {sku!r} appears twice", field=f"line {n}")
        seen.add(sku)
    went_out, restocked = [], []
    for i in range(0, len(rows), CHUNK):
        out, back, _ = await _apply(state, caller, rows[i : i + CHUNK])
        went_out += out
        restocked += back
    ids = await _out_of_stock(state, caller, went_out)
    return _json(
        {
            "imported": len(rows),
            "out_of_stock": went_out,
            "restocked": restocked,
            "invalidations": ids,
        }
    )


def routes() -> list[BaseRoute]:
    """Catalog routes."""
    return [
        Route("/v1/admin/catalog", bulk_import, methods=["POST"]),
        Route("/v1/admin/catalog/{sku:path}", put_item, methods=["PUT"]),
        Route("/v1/admin/catalog/{sku:path}", get_item, methods=["GET"]),
    ]
