"""The console is a client of the admin API, called in-process (no socket, no second copy).

Every change the console makes goes through the same handler as a ``curl`` would: the
same validation (whose ``field`` the forms show next to the input), the same roles, the
same audit entry, with the signed-in user's own token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp

__all__ = ["AdminApi", "ApiError", "open_api"]

_BASE = "http://origin.console"


class ApiError(Exception):
    """A problem+json answer of the admin API."""

    def __init__(self, status: int, doc: Any) -> None:
        doc = doc if isinstance(doc, dict) else {}
        self.status = status
        self.detail = str(doc.get("detail") or f"HTTP {status}")
        self.field = str(doc.get("field") or "")
        super().__init__(self.detail)


def _json_or_none(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


class AdminApi:
    """Calls of one signed-in user."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer; ``ApiError`` for 4xx and 5xx."""
        r = await self.client.request(method, path, json=body)
        doc = _json_or_none(r)
        if r.status_code >= 400:
            raise ApiError(r.status_code, doc)
        return doc

    async def get_bytes(self, path: str) -> tuple[bytes, dict[str, str]]:
        """GET ``path`` as bytes, with its Content-Disposition; ``ApiError`` for 4xx and 5xx."""
        r = await self.client.get(path)
        if r.status_code >= 400:
            raise ApiError(r.status_code, _json_or_none(r))
        keep = {k: v for k, v in r.headers.items() if k == "content-disposition"}
        return r.content, keep

    async def get(self, path: str) -> Any:
        """GET ``path``."""
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None) -> Any:
        """POST ``body`` as JSON."""
        return await self.call("POST", path, body)


@asynccontextmanager
async def open_api(app: ASGIApp, token: str) -> AsyncIterator[AdminApi]:
    """An API client bound to the app (its lifespan already runs) with ``token``."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"authorization": f"Bearer {token}", "user-agent": "p13n-console"}
    async with httpx.AsyncClient(transport=transport, base_url=_BASE, headers=headers) as c:
        yield AdminApi(c)
