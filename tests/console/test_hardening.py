"""Console pages against hostile input (issue 16): a deep or huge dead letter, non-finite
numbers in forms, and sessions that end at sign-out."""

from __future__ import annotations

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.asgi import app_client
from tests.console.test_pages import sign_in
from tests.origin.data import ADMIN, TOKENS

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
