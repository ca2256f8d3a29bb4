"""The pipeline page shows the last batch reconciliation (in-process HTTP)."""

from __future__ import annotations

import orjson
import pytest

from origin.app import create_app
from origin.settings import Settings
from segmenter.schema import Keys
from tests.origin.console.test_pages import sign_in
from tests.support.asgi import app_client
from tests.support.data import ADMIN, TOKENS

pytestmark = pytest.mark.anyio


async def test_pipeline_page_shows_reconciliation_differences(redis_url, redis_client):
    settings = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS), partitions=2)
    async with app_client(create_app(settings)) as client:
        await sign_in(client, ADMIN)
        before = (await client.get("/console/pipeline")).text
        report = {"from_ms": 0, "to_ms": 1, "ran_ms": 1, "compared": {"popularity": 40},
                  "differences": {"popularity": 2, "covisitation": 0, "experiments": 0},
                  "sample": [], "skipped_partitions": [3], "repaired": 2}  # fmt: skip
        redis_client.set(Keys().reconcile_report, orjson.dumps(report))
        after = (await client.get("/console/pipeline")).text
    assert "No reconciliation has run yet" in before
    assert "compared 40 aggregate values" in after
    assert '<strong class="bad" data-aggregate="popularity">popularity 2</strong>' in after
    assert "2 repaired" in after and "partitions 3 were busy" in after
