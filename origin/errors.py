"""Origin errors and their one translation into RFC 9457 problem+json.

    OriginError                       500 unless a subclass says otherwise
     ├── BadRequest                   400  (field, problem)
     │    ├── PayloadTooLarge         413
     │    └── Unprocessable           422  a rule the OpenAPI schema can only describe
     ├── Unauthorized                 401  (with WWW-Authenticate: Bearer)
     ├── Forbidden                    403
     ├── NotFound                     404
     ├── Conflict                     409
     ├── RateLimited                  429  (Retry-After)
     └── Unavailable                  503  (Retry-After): Redis down or over budget

Adapters translate redis and httpx errors into these with ``raise … from exc``; the handler
registered by ``install`` is the only place they become HTTP responses, in the one problem
shape every tier uses (``cache_keys.wire.Problem``: ``type`` is the problems base + slug).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cache_keys.wire import PROBLEM_CONTENT_TYPE, Problem

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "OriginError",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "problem_response",
]


class OriginError(Exception):
    """Base of every error the origin turns into problem+json."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class BadRequest(OriginError):
    status, slug, title = 400, "bad-request", "Bad request"


class PayloadTooLarge(BadRequest):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class Unprocessable(BadRequest):
    """Well-formed by the published schema, but breaks a rule JSON Schema cannot state
    (weights summing to 1, a field that must equal the path); the OpenAPI document lists it."""

    status, slug, title = 422, "unprocessable", "Unprocessable content"


class Unauthorized(OriginError):
    status, slug, title = 401, "unauthorized", "Missing or invalid token"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["WWW-Authenticate"] = 'Bearer realm="p13n-admin"'


class Forbidden(OriginError):
    status, slug, title = 403, "forbidden", "Not allowed for this role"


class NotFound(OriginError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(OriginError):
    status, slug, title = 409, "conflict", "Conflict"


class RateLimited(OriginError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after_s: int = 1, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after_s)


class Unavailable(OriginError):
    status, slug, title = 503, "unavailable", "Temporarily unavailable"

    def __init__(self, detail: str, retry_after_s: int = 2, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after_s)


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    instance: str = "",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """An ``application/problem+json`` response (RFC 9457)."""
    problem = Problem(status, slug, title, detail, instance, extensions)
    return Response(
        orjson.dumps(problem.to_json()),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


async def handle_origin_error(request: Request, exc: Exception) -> Response:
    """Exception handler: ``OriginError`` -> problem+json."""
    assert isinstance(exc, OriginError)
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extensions,
    )


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and friends, as problem+json too."""
    assert isinstance(exc, HTTPException)
    return problem_response(
        exc.status_code,
        "HTTP error",
        str(exc.detail),
        slug=f"http-{exc.status_code}",
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: a 500 problem without internals."""
    return problem_response(
        500,
        "Internal error",
        "unexpected error; see the origin's log",
        slug="internal",
        instance=request.url.path,
    )


EXCEPTION_HANDLERS = {
    OriginError: handle_origin_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
