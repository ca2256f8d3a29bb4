"""Strict request-body reading: size limit first, then JSON parsing with a precise error.

Nesting is bounded too (``MAX_DEPTH``): a JSON parser accepts about a thousand levels, but
re-serialising such a document (orjson stops at 255) or walking it recursively fails later,
far from the request; a body nested deeper than any document of this API is a 400 here.

    >>> nesting_depth({"events": [{"v": 1}]}), nesting_depth(7)
    (3, 0)
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from origin.errors import BadRequest, PayloadTooLarge

__all__ = ["MAX_DEPTH", "nesting_depth", "read_json", "too_deep"]

# Deepest nesting of arrays and objects accepted in a request body. The deepest documents
# of this API (a batch of events, an experiment with its namespace) are 3-4 levels deep.
MAX_DEPTH = 32


def nesting_depth(doc: Any, stop_at: int = MAX_DEPTH + 1) -> int:
    """How deeply arrays and objects nest in ``doc`` (a scalar is 0), counted without
    recursion and no further than ``stop_at``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest >= stop_at:
            return deepest
        stack.extend((v, depth) for v in value)
    return deepest


def too_deep(doc: Any) -> str | None:
    """The reason ``doc`` is refused for its nesting, None when it is within ``MAX_DEPTH``."""
    if nesting_depth(doc) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels of arrays and objects"
    return None


async def read_json(request: Request, max_bytes: int) -> tuple[Any, bytes]:
    """The decoded JSON body and its raw bytes; 413 over ``max_bytes``, 400 when not JSON or
    nested deeper than ``MAX_DEPTH``."""
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
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", field="$") from exc
    reason = too_deep(doc)
    if reason is not None:
        raise BadRequest(f"body is {reason}", field="$")
    return doc, raw
