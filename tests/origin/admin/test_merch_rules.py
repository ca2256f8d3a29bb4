"""Merchandising rules through the admin API, against a real Redis: CRUD, audit, the soft
purge that carries them to edges, the edge config, and the origin's own ranking."""

from __future__ import annotations

import pytest

from cache_keys.wire import parse_edge_config
from tests.origin.recommend.test_recommendations import SEG, jar_of, seed_world
from tests.support import data
from tests.support.data import ADMIN, EXPER, MERCH, bearer

pytestmark = pytest.mark.anyio
H = bearer(MERCH)
PIN = {"name": "spring", "kind": "pin", "skus": ["granola"], "position": 1, "routes": ["home"]}


async def test_a_rule_is_created_listed_audited_purged_softly_and_deleted(client):
    r = await client.post("/v1/admin/rules", json=PIN, headers=H)
    assert r.status_code == 201, r.text
    inv_id = r.json()["invalidation"]
    inv = (await client.get(f"/v1/admin/invalidations/{inv_id}", headers=H)).json()
    assert inv["mode"] == "soft" and inv["tags"] == ["route:home"]
    assert inv["reason"] == "merchandising rule spring created"
    listed = (await client.get("/v1/admin/rules", headers=H)).json()["rules"]
    assert [(x["name"], x["live"]) for x in listed] == [("spring", True)]
    again = await client.post("/v1/admin/rules", json=PIN, headers=H)
    assert again.status_code == 409
    audit = await client.get("/v1/admin/audit", params={"target": "rule:spring"},
                             headers=bearer(ADMIN))  # fmt: skip
    assert [e["action"] for e in audit.json()["entries"]] == ["rule.create"]
    gone = await client.delete("/v1/admin/rules/spring", headers=H)
    assert gone.status_code == 200
    assert (await client.get("/v1/admin/rules/spring", headers=H)).status_code == 404
    assert (await client.delete("/v1/admin/rules/spring", headers=H)).status_code == 404


async def test_only_merchandisers_and_admins_change_rules(client):
    assert (await client.post("/v1/admin/rules", json=PIN)).status_code == 401
    r = await client.post("/v1/admin/rules", json=PIN, headers=bearer(EXPER))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**PIN, "kind": "shove"}, 400, "kind"),
        ({**PIN, "category": "dairy"}, 422, "skus"),
        ({"name": "x", "kind": "block"}, 422, "skus"),
        ({**PIN, "position": 0}, 400, "position"),
        ({**PIN, "name": "Not A Slug"}, 400, "name"),
        ({**PIN, "kind": "boost", "factor": 0.5}, 422, "factor"),
        ({**PIN, "kind": "bury", "factor": 2}, 422, "factor"),
        ({**PIN, "factor": 2}, 422, "factor"),
        ({**PIN, "start_ms": data.NOW_MS + 10, "end_ms": data.NOW_MS}, 422, "end_ms"),
        ({**PIN, "start_ms": "yesterday"}, 422, "start_ms"),
        ({**PIN, "when": "soon"}, 422, "when"),
        ({**PIN, "when": data.NOW_MS - 1}, 422, "when"),
        ({**PIN, "colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_rules_name_the_field(client, body, status, field):
    r = await client.post("/v1/admin/rules", json=body, headers=H)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert (await client.get("/v1/admin/rules", headers=H)).json()["rules"] == []


async def test_the_edge_config_carries_rules_with_hashed_segments_only(client):
    body = {"name": "vip-deal", "kind": "boost", "category": "dairy", "factor": 3.0,
            "segments": ["returning|grocery|mid"]}  # fmt: skip
    assert (await client.post("/v1/admin/rules", json=body, headers=H)).status_code == 201
    doc = (await client.get("/v1/edge/config")).json()
    (rule,) = parse_edge_config(doc).rules
    assert rule.segments == (SEG,)
    assert "returning|grocery|mid" not in str(doc)


async def test_the_origins_ranking_applies_rules_with_their_reason(client, redis_client):
    shopper = seed_world(redis_client)
    jar = jar_of({"p13n_sid": shopper})

    async def rail():
        r = await client.get("/v1/recommendations", params={"k": "3"}, headers=jar)
        return r.json()["items"]

    before = await rail()
    assert before[0]["item"] != "apples"
    rules = [
        {"name": "brand-deal", "kind": "pin", "skus": ["apples"], "position": 1},
        {"name": "recall", "kind": "block", "skus": [before[0]["item"]]},
    ]
    for rule in rules:
        assert (await client.post("/v1/admin/rules", json=rule, headers=H)).status_code == 201
    after = await rail()
    assert after[0] == {**after[0], "item": "apples",
                        "reason": "pinned by merchandising rule brand-deal"}  # fmt: skip
    assert before[0]["item"] not in [i["item"] for i in after]
    assert len(after) == 3
