"""Console pages over HTTP in-process: cookies, CSRF, roles and headers (the browser tests
cover the same pages end to end)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.support import data
from tests.support.asgi import app_client
from tests.support.data import ADMIN, EXPER, MERCH, TOKENS

pytestmark = pytest.mark.anyio
PAGES = ["/console/experiments", "/console/experiments/new", "/console/catalog",
         "/console/invalidations", "/console/pipeline", "/console/rails"]  # fmt: skip


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def sign_in(client, token: str) -> str:
    page = await client.get("/console/signin")
    r = await client.post("/console/signin", data={"csrf": csrf_of(page.text), "token": token})
    assert r.status_code == 303, r.text
    return csrf_of((await client.get("/console/signin")).text)


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_token(client):
    r = await client.get("/console/signin")
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    r = await client.post("/console/signin", data={"csrf": csrf_of(r.text), "token": ADMIN})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert ADMIN not in cookie and ".admin." in cookie
    for path in PAGES:
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert page.headers["cache-control"] == "no-store"


async def test_posts_without_this_sessions_csrf_token_are_refused(client):
    page = await client.get("/console/signin")
    r = await client.post("/console/signin", data={"token": ADMIN})
    assert r.status_code == 403 and "CSRF" in r.text
    csrf = await sign_in(client, EXPER)
    assert csrf != csrf_of(page.text)  # signing in gives a new session and token
    r = await client.post("/console/experiments/new", data={"csrf": csrf_of(page.text), "key": "x"})
    assert r.status_code == 403
    r = await client.post("/console/experiments/new", data={"key": "x"})
    assert r.status_code == 403
    r = await client.post(
        "/console/experiments/new", data={"csrf": csrf, "key": "x", "variations": "a\r\nb"}
    )
    assert r.status_code == 303 and r.headers["location"].endswith(
        "/console/experiments/x?done=created"
    )


async def test_roles_decide_the_pages(client):
    await sign_in(client, MERCH)
    assert (await client.get("/console/catalog")).status_code == 200
    for path in ("/console/experiments", "/console/pipeline"):
        r = await client.get(path)
        assert r.status_code == 403 and "may not open" in r.text


async def test_a_removed_token_signs_its_session_out(redis_url):
    first = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS))
    async with app_client(create_app(first)) as client:
        await sign_in(client, EXPER)
        cookies = dict(client.cookies)
    without = Settings(redis_url=redis_url, admin_tokens={ADMIN: "admin"})
    async with app_client(create_app(without)) as client:
        client.cookies.update(cookies)
        r = await client.get("/console/experiments")
        assert r.status_code == 303 and r.headers["location"] == "/console/signin"
        assert ".-.-." in r.headers["set-cookie"]  # a fresh signed-out session


async def test_static_files_and_home(client):
    assert (await client.get("/console/static/console.js")).status_code == 200
    r = await client.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/signin"
    await sign_in(client, MERCH)
    assert (await client.get("/console/")).headers["location"] == "/console/catalog"


async def test_the_rail_preview_draws_the_rail_answer_with_its_labels(redis_url, redis_client):
    milk = replace(data.items(("milk", 9, "dairy"))[0], name="Whole <milk> 1 l",
                   image_url="https://cdn.shop.example/milk.jpg")  # fmt: skip
    data.put_popular(redis_client, (milk, *data.items(("bread", 5, "bakery"))))
    settings = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS), partitions=2)
    async with app_client(create_app(settings)) as client:  # its snapshot holds the list
        await sign_in(client, MERCH)
        r = await client.get("/console/rails", params={"route": "home"})
        denied = await client.get("/console/rails", params={"user": "cust_1"})
    assert r.status_code == 200, r.text
    html = r.text
    assert 'data-sku="milk"' in html and 'data-sku="bread"' in html
    assert "Whole &lt;milk&gt; 1 l" in html and "<milk>" not in html  # shown as text
    assert 'src="https://cdn.shop.example/milk.jpg"' in html and ">1.00<" in html
    assert denied.status_code == 200 and 'id="rail-error"' in denied.text  # service role only
