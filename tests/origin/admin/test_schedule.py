"""Scheduled changes on a fake clock against a real Redis: applied on time, once across
several origin processes, and still applied after the origin that queued them restarted."""

from __future__ import annotations

import asyncio

import pytest

from origin.admin import schedule
from origin.admin.scheduler import run_due
from origin.app import create_app
from tests.support.asgi import app_client
from tests.support.data import ADMIN, MERCH, NOW_MS, bearer

pytestmark = pytest.mark.anyio
H = bearer(MERCH)


def state_of(client):
    return client.app.state.p13n


async def test_a_scheduled_purge_waits_for_its_time_then_applies_once(client, clock):
    when = "2025-11-24T16:10:00Z"  # NOW_MS + 10 minutes
    assert schedule.parse_time(when, "when") == NOW_MS + 600_000
    body = {"tags": ["cat:dairy"], "mode": "hard", "when": when}
    r = await client.post("/v1/admin/invalidations", json=body, headers=H)
    assert r.status_code == 202, r.text
    inv = r.json()
    assert inv["state"] == "scheduled" and inv["scheduled_for_ms"] == NOW_MS + 600_000
    logged = (await client.get(f"/v1/admin/invalidations/{inv['id']}", headers=H)).json()
    assert logged["state"] == "scheduled" and logged["generations"] == {}
    assert await run_due(state_of(client)) == []  # not yet
    clock.advance(600)
    (job,) = await run_due(state_of(client))
    assert job["status"] == "applied" and job["outcome"] == {"invalidation": inv["id"]}
    assert await run_due(state_of(client)) == []  # never twice
    done = (await client.get(f"/v1/admin/invalidations/{inv['id']}", headers=H)).json()
    assert done["generations"]["cat:dairy"] == [1, 1]
    assert done["scheduled_for_ms"] == NOW_MS + 600_000
    assert done["state"] == "no-live-edges"


async def test_several_origins_apply_a_due_rule_once(client, settings, clock):
    body = {"name": "xmas", "kind": "block", "category": "toys", "when": NOW_MS + 5_000}
    assert (await client.post("/v1/admin/rules", json=body, headers=H)).status_code == 202
    assert (await client.get("/v1/admin/rules", headers=H)).json()["rules"] == []
    clock.advance(5)
    others = [create_app(settings, clock=clock) for _ in range(3)]
    async with app_client(others[0]) as a, app_client(others[1]) as b, app_client(others[2]) as c:
        assert a and b and c  # each app's lifespan is running
        # every process's own loop also looks for due jobs as it starts: four appliers race
        done = await asyncio.gather(*(run_due(app.state.p13n) for app in others))
    assert sum(len(d) for d in done) <= 1
    (job,) = await schedule.jobs(state_of(client))
    assert job["status"] == "applied"
    audit = await client.get("/v1/admin/audit", params={"action": "rule.create"},
                             headers=bearer(ADMIN))  # fmt: skip
    assert len(audit.json()["entries"]) == 1  # applied once
    rules = (await client.get("/v1/admin/rules", headers=H)).json()["rules"]
    assert [x["name"] for x in rules] == ["xmas"]


async def test_a_scheduled_change_survives_a_restart_of_the_origin(settings, clock):
    async with app_client(create_app(settings, clock=clock)) as first:
        r = await first.delete("/v1/admin/rules/none-yet", params={"when": str(NOW_MS + 1000)},
                               headers=H)  # fmt: skip
        assert r.status_code == 202
        body = {"name": "later", "kind": "pin", "skus": ["A-1"], "when": NOW_MS + 1000}
        assert (await first.post("/v1/admin/rules", json=body, headers=H)).status_code == 202
    clock.advance(2)
    app = create_app(settings, clock=clock)
    async with app_client(app):
        await run_due(app.state.p13n)  # with the loop that started with the app: either wins
    third = create_app(settings, clock=clock)  # the second's exit waited for its applier
    async with app_client(third) as client:
        jobs = await schedule.jobs(third.state.p13n)
        rules = (await client.get("/v1/admin/rules", headers=H)).json()["rules"]
    assert [x["name"] for x in rules] == ["later"]
    assert sorted((j["kind"], j["status"]) for j in jobs) == [
        ("rule.create", "applied"),
        ("rule.delete", "failed"),  # the rule it names never existed: said, not hidden
    ]
