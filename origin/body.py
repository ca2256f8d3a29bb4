"""Strict request-body reading: size limit first, then JSON parsing with a precise error."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from origin.errors import BadRequest, PayloadTooLarge

__all__ = ["read_json"]


async def read_json(request: Request, max_bytes: int) -> tuple[Any, bytes]:
    """The decoded JSON body and its raw bytes; 413 over ``max_bytes``, 400 when not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte limit")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in ("application/json", "text/plain"):  # text/plain: navigator.sendBeacon
        raise BadRequest(f"content-type {ctype!r} is not application/json", field="$")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", field="$") from exc
