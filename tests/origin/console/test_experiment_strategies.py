"""The experiment form's named strategies, overlap warnings and rollback, over HTTP in process
(the browser test covers the same end to end)."""

from __future__ import annotations

import pytest

from tests.origin.console.test_pages import sign_in
from tests.support.data import EXPER, bearer

pytestmark = pytest.mark.anyio


async def _create(client, csrf, key, variations, routes="home"):
    form = {"csrf": csrf, "key": key, "variations": variations, "weights": "0.5, 0.5",
            "coverage": "1", "routes": routes}  # fmt: skip
    return await client.post("/console/experiments/new", data=form)


async def test_the_form_lists_the_strategies_and_a_variation_picks_one(client):
    csrf = await sign_in(client, EXPER)
    page = await client.get("/console/experiments/new")
    assert (
        'data-strategy="due-first"' in page.text
        and "Leads with what the shopper is due" in page.text
    )
    r = await _create(client, csrf, "rail-s", "control: default\ndue: due-first")
    assert r.status_code == 303, r.text
    exp = (await client.get("/v1/admin/experiments/rail-s", headers=bearer(EXPER))).json()
    assert [v.get("strategy") for v in exp["variations"]] == ["default", "due-first"]
    page = await client.get("/console/experiments/rail-s")
    assert "due: due-first" in page.text  # the textarea shows it back
    assert 'data-variation="due"' in page.text and "Leads with what the shopper is due" in page.text
    bad = await _create(client, csrf, "rail-bad", "control\nfast: fastest")
    assert bad.status_code == 400 and "unknown strategy &#39;fastest&#39;" in bad.text


async def test_overlap_warnings_and_refusals_are_shown(client):
    csrf = await sign_in(client, EXPER)
    await _create(client, csrf, "rail-s", "control\ndue: due-first")
    await client.post("/console/experiments/rail-s/start", data={"csrf": csrf})
    r = await _create(client, csrf, "banner", "a\nb")
    assert r.status_code == 200 and "Warning: overlaps running experiment" in r.text
    r = await client.post("/console/experiments/banner/start", data={"csrf": csrf})
    assert r.status_code == 200 and "Experiment started. Warning: overlaps" in r.text
    await _create(client, csrf, "clash", "a\nb: trending")
    r = await client.post("/console/experiments/clash/start", data={"csrf": csrf})
    assert r.status_code == 400 and "also changes the rail on route home" in r.text


async def test_rollback_restores_an_earlier_definition(client):
    csrf = await sign_in(client, EXPER)
    await _create(client, csrf, "rail-s", "control\ndue: due-first")
    page = await client.get("/console/experiments/rail-s")
    assert 'id="rollback"' not in page.text  # nothing to roll back to yet
    form = {"csrf": csrf, "name": "", "description": "", "variations": "control\ndue: goes-with",
            "weights": "0.5, 0.5", "coverage": "1", "routes": "home"}  # fmt: skip
    assert (await client.post("/console/experiments/rail-s", data=form)).status_code == 303
    page = await client.get("/console/experiments/rail-s")
    assert 'id="rollback"' in page.text and "data-confirm=" in page.text
    r = await client.post(
        "/console/experiments/rail-s/rollback", data={"csrf": csrf, "version": "1"}
    )
    assert r.status_code == 303 and r.headers["location"].endswith("done=rolled-back")
    exp = (await client.get("/v1/admin/experiments/rail-s", headers=bearer(EXPER))).json()
    assert exp["version"] == 3 and exp["variations"][1]["strategy"] == "due-first"
    r = await client.post(
        "/console/experiments/rail-s/rollback", data={"csrf": csrf, "version": "9"}
    )
    assert r.status_code == 400 and "no earlier version 9" in r.text
    r = await client.post(
        "/console/experiments/rail-s/rollback", data={"csrf": csrf, "version": "x"}
    )
    assert r.status_code == 400 and "is not a version number" in r.text
