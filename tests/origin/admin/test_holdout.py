"""The global holdout: its admin API, the origin's rails, and its counts from exposures."""

from __future__ import annotations

import anyio
import pytest

from cache_keys.experiments import HOLDOUT_KEY, in_holdout
from cache_keys.wire import SHOPPER_COOKIE, parse_edge_config
from edge.answer import exposure_batch
from edge.plan import decide
from tests.support import data, segmenter
from tests.support.data import ADMIN, EXPER, bearer
from tests.support.edge import make_settings, parts

pytestmark = pytest.mark.anyio
H = bearer(EXPER)
SHOPPERS = [data.sid(n) for n in range(60)]


async def _rail(client, shopper: str) -> dict:
    r = await client.get(
        "/v1/recommendations", headers={"Cookie": f"{SHOPPER_COOKIE.name}={shopper}"}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_the_share_starts_from_the_setting_and_is_set_audited(client):
    r = await client.get("/v1/admin/holdout", headers=H)
    assert r.json() == {"key": HOLDOUT_KEY, "arms": ["holdout", "personalized"], "share": 0.0,
                        "source": "setting"}  # fmt: skip
    for bad in ({"share": 1.5}, {"share": "0.1"}, {"share": True}, {}, {"share": 0.1, "x": 1}):
        r = await client.put("/v1/admin/holdout", json=bad, headers=H)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = await client.put("/v1/admin/holdout", json={"share": 0.25}, headers=H)
    assert r.status_code == 200 and r.json()["share"] == 0.25 and r.json()["source"] == "admin"
    assert (await client.get("/v1/admin/holdout", headers=H)).json()["share"] == 0.25
    cfg = parse_edge_config((await client.get("/v1/edge/config")).json())
    assert cfg.holdout == 0.25
    audit = await client.get("/v1/admin/audit", params={"target": "holdout"}, headers=bearer(ADMIN))
    (entry,) = audit.json()["entries"]
    assert entry["action"] == "holdout.set" and entry["after"]["share"] == 0.25
    assert (await client.put("/v1/admin/holdout", json={"share": 0.1})).status_code == 401


async def test_the_holdout_key_is_no_experiments(client):
    body = {"key": HOLDOUT_KEY, "variations": [{"name": "a"}, {"name": "b"}]}
    r = await client.post("/v1/admin/experiments", json=body, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "key"


async def test_held_out_shoppers_get_the_popular_rail_and_no_experiment(client, redis_client):
    data.put_popular(redis_client, data.items(("pop1", 9, "toys"), ("pop2", 8, "food")))
    data.put_list(redis_client, data.hseg("s"), "control", data.items(("own", 9, "x")), "e1")
    for s in SHOPPERS:
        data.put_shopper(redis_client, s, segment_hseg=data.hseg("s"))
    exp = {"key": "rail-algo", "variations": [{"name": "a"}, {"name": "b"}]}
    await client.post("/v1/admin/experiments", json=exp, headers=H)
    await client.post("/v1/admin/experiments/rail-algo/start", headers=H)
    before = [await _rail(client, s) for s in SHOPPERS[:5]]
    assert all(HOLDOUT_KEY not in doc["variants"] for doc in before)  # no holdout, no mark
    await client.put("/v1/admin/holdout", json={"share": 0.5}, headers=H)
    held = 0
    for s in SHOPPERS:
        doc = await _rail(client, s)
        if in_holdout(s, 0.5):
            held += 1
            assert doc["variants"] == {HOLDOUT_KEY: "holdout"}
            assert [i["item"] for i in doc["items"]] == ["pop1", "pop2"]
        else:
            assert doc["variants"][HOLDOUT_KEY] == "personalized"
            assert "rail-algo" in doc["variants"] and doc["items"][0]["item"] == "own"
    assert 15 < held < 45


async def test_exposures_the_edge_logs_are_counted_per_arm(client, redis_url, redis_client):
    segmenter.load(redis_client, [])  # every partition's stream and group, as the helper polls
    await client.put("/v1/admin/holdout", json={"share": 0.5}, headers=H)
    cfg = parse_edge_config((await client.get("/v1/edge/config")).json())
    settings = make_settings(ORIGIN_URL="http://origin.test")
    events = []
    for s in SHOPPERS:
        plan = decide(parts(shopper=s), cfg, settings, data.NOW_MS)
        events += exposure_batch(plan, data.NOW_MS)["events"]
    r = await client.post("/v1/events", json={"events": events})
    assert r.status_code == 202 and r.json()["accepted"] == len(SHOPPERS)
    proc = segmenter.settings(redis_url, partitions=client.app.state.p13n.settings.partitions)
    await anyio.to_thread.run_sync(segmenter.run_until_drained, redis_url, proc)
    r = await client.get("/v1/admin/holdout/results", headers=H)
    doc = r.json()["global_holdout"]
    held = sum(in_holdout(s, 0.5) for s in SHOPPERS)
    assert doc["share"] == 0.5 and doc["key"] == HOLDOUT_KEY
    assert doc["counts"]["holdout"]["exposed"] == held
    assert doc["counts"]["personalized"]["exposed"] == len(SHOPPERS) - held
    assert doc["counts"]["holdout"]["converted"] == 0
