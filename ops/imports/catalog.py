"""``p13n import catalog FILE``: products with names, images and categories, through the admin
API (``POST /v1/admin/catalog``: validation, roles, audit log and out-of-stock purges are the
service's).

    sku,stock,price,category,durable,name,image_url,category_path          CSV (.csv)
    {"sku": "SKU-1", "stock": 4, "price": 2.5, "category": "dairy", ...}   JSON Lines

Plain or gzip. The file goes in parts of ``rows_per_request`` rows (the API takes 200,000 at
most per request and validates a whole request before writing any of it); an error names the
part's rows and the API's reason (which names the line within the part). Writes are upserts,
so re-running the import after fixing a line is safe.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ops.target import ApiError, OpsError, Target

__all__ = ["import_catalog", "report_text"]

ROWS_PER_REQUEST = 20_000


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OpsError(f"{path.name} is not UTF-8 text: {exc}") from exc


def _parts(path: Path, rows: int) -> Iterator[tuple[int, int, str, str]]:
    """(first file line, last file line, content type, body) of each request."""
    lines = _text(path).splitlines()
    csv = path.name.removesuffix(".gz").endswith(".csv")
    header, first = (lines[0], 2) if csv and lines else ("", 1)
    body = lines[1:] if csv else lines
    ctype = "text/csv" if csv else "application/x-ndjson"
    for i in range(0, len(body), rows):
        part = body[i : i + rows]
        text = "\n".join([header, *part] if csv else part) + "\n"
        yield first + i, first + i + len(part) - 1, ctype, text


def import_catalog(
    target: Target, path: Path, rows_per_request: int = ROWS_PER_REQUEST
) -> dict[str, Any]:
    """Send the file; the summed answers. ``OpsError`` naming the rows of a refused part."""
    total: dict[str, Any] = {
        "imported": 0,
        "out_of_stock": [],
        "restocked": [],
        "invalidations": [],
    }
    url = target.need("origin_url").rstrip("/") + "/v1/admin/catalog"
    for first, last, ctype, text in _parts(path, rows_per_request):
        if not text.strip():
            continue
        resp = target.request("POST", url, auth=True, content=text.encode(),
                              headers={"content-type": ctype})  # fmt: skip
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text[:200])
            except ValueError:
                detail = resp.text[:200]
            raise ApiError(f"{path.name} lines {first}-{last}: {resp.status_code} {detail} "
                           f"(rows before line {first} were imported)", resp.status_code,
                           {"detail": detail}, str(detail))  # fmt: skip
        doc = resp.json()
        total["imported"] += doc["imported"]
        for name in ("out_of_stock", "restocked", "invalidations"):
            total[name] += doc[name]
    return total


def report_text(path: Path, doc: dict[str, Any]) -> str:
    return (
        f"{path.name}: {doc['imported']:,} products imported, {len(doc['out_of_stock'])} out of "
        f"stock (purged: {len(doc['invalidations'])} invalidations), "
        f"{len(doc['restocked'])} back in stock"
    )
