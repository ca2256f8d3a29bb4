"""Console pages against hostile input (issue 16): a deep or huge dead letter, non-finite
numbers in forms, and sessions that end at sign-out."""

from __future__ import annotations

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.origin.console.test_pages import sign_in
from tests.support.asgi import app_client
from tests.support.data import ADMIN, TOKENS

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_url, tmp_path):
    settings = Settings(
        redis_url=redis_url,
        admin_tokens=dict(TOKENS),
        partitions=2,
        archive_dir=str(tmp_path / "archive"),
    )
    async with app_client(create_app(settings)) as c:
        yield c


async def test_the_pipeline_page_lists_deep_and_huge_letters_and_downloads_one_whole(client):
    deep = b"[" * 1000 + b"]" * 1000
    huge = b'{"v": 1, "pad": "' + b"z" * 500_000 + b'"}'
    for raw in (deep, huge):
        r = await client.post("/v1/events", content=raw, headers={"content-type": "text/plain"})
        assert r.status_code == 400
    await sign_in(client, ADMIN)
    page = await client.get("/console/pipeline")
    assert page.status_code == 200, page.text[:500]
    assert len(page.content) < 60_000 and "[[[[" in page.text
    hrefs = [h for h in page.text.split('href="')[1:] if h.startswith("/console/pipeline/dlq/")]
    downloaded = []
    for href in hrefs:
        r = await client.get(href.split('"')[0])
        assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
        downloaded.append(r.content)
    assert sorted(downloaded) == sorted([deep, huge])
    assert (await client.get("/console/pipeline/dlq/1-0")).status_code == 404


NON_FINITE = ["nan", "inf", "-inf", "1e309", "NaN", "Infinity"]


@pytest.mark.parametrize("value", NON_FINITE)
async def test_a_non_finite_price_is_a_form_error_not_a_500(client, value):
    item = {"category": "dairy", "price": 2.5, "stock": 3, "durable": False}
    put = await client.put("/v1/admin/catalog/SKU-1", json=item, headers=_bearer(ADMIN))
    assert put.status_code == 200, put.text
    csrf = await sign_in(client, ADMIN)
    r = await client.post(
        "/console/catalog/SKU-1", data={"csrf": csrf, "op": "price", "price": value}
    )
    assert r.status_code == 400 and "not a finite number" in r.text
    stock = await client.post(
        "/console/catalog/SKU-1", data={"csrf": csrf, "op": "stock", "stock": "9" * 5000}
    )
    assert stock.status_code == 400 and "whole number" in stock.text


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("field", ["weights", "coverage", "layer_start", "layer_end"])
async def test_non_finite_experiment_numbers_are_form_errors_not_500s(client, field, value):
    csrf = await sign_in(client, ADMIN)
    form = {"csrf": csrf, "key": "nf", "variations": "a\nb", "layer": "rails", field: value}
    r = await client.post("/console/experiments/new", data=form)
    assert r.status_code == 400 and "not a finite number" in r.text


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_sign_out_revokes_the_session_at_once_even_for_a_saved_cookie(client, redis_client):
    csrf = await sign_in(client, ADMIN)
    saved = dict(client.cookies)
    assert (await client.get("/console/pipeline")).status_code == 200
    out = await client.post("/console/signout", data={"csrf": csrf})
    assert out.status_code == 303
    client.cookies.clear()
    client.cookies.update(saved)  # an attacker's copy of the signed-in cookie
    r = await client.get("/console/pipeline")
    assert r.status_code == 303 and r.headers["location"] == "/console/signin"
    # The deny-list entry lives as long as the session would have, no longer.
    (key,) = redis_client.keys("*console:revoked:*")
    assert 0 < redis_client.ttl(key) <= Settings().console_session_s + 1


async def test_other_sessions_of_the_same_token_stay_signed_in(client):
    csrf = await sign_in(client, ADMIN)
    first = dict(client.cookies)
    client.cookies.clear()
    await sign_in(client, ADMIN)
    second = dict(client.cookies)
    client.cookies.clear()
    client.cookies.update(first)
    assert (await client.post("/console/signout", data={"csrf": csrf})).status_code == 303
    client.cookies.clear()
    client.cookies.update(second)
    assert (await client.get("/console/pipeline")).status_code == 200
