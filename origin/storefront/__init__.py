"""The storefront at ``/shop/``: what a shopper sees, for demos and for looking at rails.

| path | what |
|---|---|
| ``/shop/`` | categories, one product of each, the home rail |
| ``/shop/c/{category}`` | the category's products, the home rail |
| ``/shop/p/{sku}`` | one product (a view event), the product-page rail |
| ``/shop/tiles?items=A,B`` | product tiles of a rail (an HTML fragment) |
| ``/shop/img/{sku}.svg`` | a placeholder picture |

Plain server-rendered HTML (Jinja2, autoescaped), cached by the edge like any shop page; the
rails are fetched by ``static/shop.js`` from the edge's rail route, and a debug panel
(``?debug=1``) shows the variant, the rail's ``Cache-Status`` and each item's reason. Open it
through the edge (``p13n up`` prints the URL): on the origin itself there is no rail route.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from origin.storefront import pages

__all__ = ["routes"]

STATIC = Path(__file__).parent / "static"


def routes() -> list[BaseRoute]:
    """The storefront, mounted at ``/shop``."""
    return [
        Mount(
            "/shop",
            routes=[
                Route("/", pages.home, methods=["GET", "HEAD"]),
                Route("/c/{category}", pages.category, methods=["GET", "HEAD"]),
                Route("/p/{sku:path}", pages.product, methods=["GET", "HEAD"]),
                Route("/tiles", pages.tiles, methods=["GET", "HEAD"]),
                Route("/img/{sku:path}.svg", pages.image, methods=["GET", "HEAD"]),
                Mount("/static", StaticFiles(directory=STATIC), name="shop-static"),
            ],
        )
    ]
