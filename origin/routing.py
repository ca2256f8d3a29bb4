"""One route per path: the app's routes merged so a 405 names every allowed method.

Starlette answers 405 from the first route whose path matches, with only that route's
methods in ``Allow``; feature modules declare one ``Route`` per (path, method), so
``OPTIONS /v1/admin/catalog/{sku}`` said ``Allow: PUT`` while GET works too. Here the
routes of one path become one ``Route`` whose endpoint picks the handler by method:

    [Route("/x", get, ["GET"]), Route("/x", put, ["PUT"])]
    -> [Route("/x", <by method>, ["GET", "PUT"])]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["merge_methods"]

Endpoint = Callable[[Request], Awaitable[Response]]


def _by_method(handlers: dict[str, Endpoint]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def merge_methods(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with every group of plain ``Route``s of one path merged into one, in the
    place of the group's first; other routes (mounts) unchanged."""
    groups: dict[str, list[Route]] = {}
    out: list[Any] = []
    for r in routes:
        if isinstance(r, Route) and r.methods:
            if r.path not in groups:
                groups[r.path] = []
                out.append(r.path)
            groups[r.path].append(r)
        else:
            out.append(r)
    return [_merged(groups[x]) if isinstance(x, str) else x for x in out]


def _merged(group: list[Route]) -> Route:
    if len(group) == 1:
        return group[0]
    handlers: dict[str, Endpoint] = {}
    for r in group:
        for m in r.methods or ():
            handlers.setdefault(m, r.endpoint)
    methods = sorted(m for m in handlers if m != "HEAD")
    return Route(group[0].path, _by_method(handlers), methods=methods, name=group[0].name)
