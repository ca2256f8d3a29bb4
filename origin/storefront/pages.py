"""The storefront's handlers: plain HTML, the same for every shopper, so the edge caches it.

Nothing on these pages is personal: the rails are fetched by ``shop.js`` from the edge's rail
route after the page loads, and the product tiles for them from ``/shop/tiles``. Every answer
is ``public`` with a short max-age and stale-while-revalidate / stale-if-error, never sets a
cookie, and carries ``Cache-Tag`` (the categories and skus it shows) so a purge reaches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cache_keys import cache_tag_header, tag
from cache_keys.errors import CacheKeysError
from origin.catalog_records import parse_sku
from origin.errors import BadRequest, NotFound
from origin.state import get_state
from origin.storefront.catalog import Product, ShopCatalog, placeholder_svg

__all__ = ["category", "home", "image", "product", "tiles"]

# Pages may be a minute old; a stale one is served while revalidating, or for a day while
# the origin fails (RFC 5861). The edge keys them by URL only: they never vary per shopper.
CACHE_CONTROL = "public, max-age=60, stale-while-revalidate=300, stale-if-error=86400"
MAX_TILES = 24
_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)


def _tags(products: list[Product], categories: list[str]) -> str:
    tags = [tag("route", "shop")] + [tag("cat", c) for c in categories]
    tags += [tag("sku", p.sku) for p in products]
    return cache_tag_header(dict.fromkeys(tags))


def _page(template: str, products: list[Product], categories: list[str], **ctx: Any) -> Response:
    html = _ENV.get_template(template).render(categories=categories, products=products, **ctx)
    headers = {"Cache-Control": CACHE_CONTROL, "Cache-Tag": _tags(products, categories)}
    return HTMLResponse(html, headers=headers)


async def home(request: Request) -> Response:
    """``/shop/``: categories, one product of each, and the home rail."""
    shop = await ShopCatalog.load(get_state(request))
    cats = shop.categories()
    return _page("home.html", shop.featured(), cats, rail="home", title="Home")


async def category(request: Request) -> Response:
    """``/shop/c/{category}``: the category's products and the home rail."""
    name = request.path_params["category"]
    shop = await ShopCatalog.load(get_state(request))
    products = shop.in_category(name)
    if not products:
        raise NotFound(f"no category {name!r} with products in stock")
    cats = shop.categories()
    return _page("category.html", products, cats, rail="home", title=name.title(), current=name)


async def product(request: Request) -> Response:
    """``/shop/p/{sku}``: one product, its view event, and the product-page rail."""
    sku = parse_sku(request.path_params["sku"])
    shop = await ShopCatalog.load(get_state(request))
    found = shop.some([sku])
    if not found:
        raise NotFound(f"no product {sku!r}")
    item = found[0]
    return _page("product.html", [item], shop.categories(), rail="pdp", title=item.name, item=item)


async def tiles(request: Request) -> Response:
    """``/shop/tiles?items=A,B``: the product tiles of a rail, as an HTML fragment."""
    raw = request.query_params.get("items", "")
    skus = [s for s in raw.split(",") if s][:MAX_TILES]
    try:
        wanted = [parse_sku(s) for s in skus]
    except BadRequest as exc:
        raise BadRequest(f"items: {exc}") from exc
    shop = await ShopCatalog.load(get_state(request))
    products = shop.some(wanted)
    html = _ENV.get_template("tiles.html").render(products=products)
    headers = {"Cache-Control": CACHE_CONTROL, "Cache-Tag": _tags(products, [])}
    return HTMLResponse(html, headers=headers)


async def image(request: Request) -> Response:
    """``/shop/img/{sku}.svg``: the product's placeholder picture."""
    sku = parse_sku(request.path_params["sku"])
    shop = await ShopCatalog.load(get_state(request))
    found = shop.some([sku])
    label = found[0].name if found else sku
    try:
        tags = cache_tag_header([tag("sku", sku)])
    except CacheKeysError as exc:
        raise BadRequest(str(exc)) from exc
    headers = {"Cache-Control": "public, max-age=86400", "Cache-Tag": tags}
    return Response(placeholder_svg(sku, label), media_type="image/svg+xml", headers=headers)
