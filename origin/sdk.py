"""``GET /v1/sdk/p13n.js``: the browser snippet that batches events and sends them by beacon.

The file ships as package data (``origin/p13n.js``); it is read once and served with a
strong ETag and a day of caching (shoppers' browsers and the CDN keep it).
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["SDK_PATH", "routes", "sdk_source"]

SDK_PATH = "/v1/sdk/p13n.js"


def sdk_source() -> bytes:
    """The snippet's bytes."""
    return resources.files("origin").joinpath("p13n.js").read_bytes()


_BODY = sdk_source()
_ETAG = '"' + hashlib.sha256(_BODY).hexdigest()[:16] + '"'


async def sdk(request: Request) -> Response:
    """The snippet, revalidatable."""
    headers = {"Cache-Control": "public, max-age=86400", "ETag": _ETAG}
    if request.headers.get("if-none-match") == _ETAG:
        return Response(status_code=304, headers=headers)
    return Response(_BODY, media_type="text/javascript", headers=headers)


def routes() -> list[BaseRoute]:
    """The SDK route."""
    return [Route(SDK_PATH, sdk, methods=["GET"])]
