"""Experiments API: validation, layers, ramp-safe coverage, re-seeding, rollback, audit."""

from __future__ import annotations

import pytest

from cache_keys.wire import parse_edge_config
from tests.support import data
from tests.support.data import ADMIN, EXPER, bearer

pytestmark = pytest.mark.anyio
H = bearer(EXPER)


def doc(key="rail-algo", **over):
    base = {
        "key": key,
        "name": "Rail algorithm",
        "variations": [{"name": "control"}, {"name": "boost", "weights": {"category_boost": 2.0}}],
        "weights": [0.5, 0.5],
        "namespace": {"layer": "rails", "start": 0.0, "end": 0.5},
    }
    return {**base, **over}


async def create_and_start(client, **over):
    r = await client.post("/v1/admin/experiments", json=doc(**over), headers=H)
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/admin/experiments/{r.json()['experiment']['key']}/start", headers=H)
    assert r.status_code == 200, r.text
    return r.json()["experiment"]


@pytest.mark.parametrize(
    ("over", "field", "status"),
    [
        # 422: rules across fields or values, which the OpenAPI schema can only describe
        ({"weights": [0.5, 0.6]}, "weights", 422),
        ({"weights": [1.0]}, "weights", 422),
        ({"coverage": 1.5}, "coverage", 400),
        ({"coverage": -0.1}, "coverage", 400),
        ({"variations": [{"name": "only"}]}, "variations", 400),
        ({"variations": [{"name": "a"}, {"name": "a"}]}, "variations", 422),
        ({"variations": [{"name": "a"}, {"name": ["a"]}]}, "variations[1].name", 400),
        ({"variations": [{"name": "a"}, {"name": "Bad Name"}]}, "variations[1].name", 400),
        ({"namespace": {"layer": "rails", "start": 0.6, "end": 0.5}}, "namespace", 422),
        ({"namespace": {"layer": "rails", "start": 0.6, "end": 1.5}}, "namespace", 400),
        ({"start_ms": 10, "stop_ms": 5}, "stop_ms", 422),
        ({"routes": ["Not A Slug"]}, "routes", 400),
        ({"key": "Bad Key"}, "key", 400),
        ({"colour": "red"}, "colour", 400),
        ({"variations": [{"name": "a"}, {"name": "b", "bogus": 1}]}, "variations[1].bogus", 400),
    ],
)
async def test_invalid_definitions_are_4xx_naming_the_field(client, over, field, status):
    r = await client.post("/v1/admin/experiments", json=doc(**over), headers=H)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


async def test_create_read_list_and_duplicate(client):
    r = await client.post("/v1/admin/experiments", json=doc(), headers=H)
    exp = r.json()["experiment"]
    assert exp["status"] == "draft" and exp["version"] == 1 and exp["seed"] == "rail-algo"
    assert (await client.get("/v1/admin/experiments/rail-algo", headers=H)).json() == exp
    listed = (await client.get("/v1/admin/experiments", headers=H)).json()["experiments"]
    assert [e["key"] for e in listed] == ["rail-algo"]
    again = await client.post("/v1/admin/experiments", json=doc(), headers=H)
    assert again.status_code == 409
    missing = await client.get("/v1/admin/experiments/nope", headers=H)
    assert missing.status_code == 404 and missing.json()["field"] == "key"


async def test_layer_ranges_may_not_overlap_among_running_experiments(client):
    await create_and_start(client)
    other = doc("banner", namespace={"layer": "rails", "start": 0.4, "end": 0.9})
    assert (await client.post("/v1/admin/experiments", json=other, headers=H)).status_code == 201
    r = await client.post("/v1/admin/experiments/banner/start", headers=H)
    assert r.status_code == 409 and r.json()["conflicts_with"] == "rail-algo"
    # the same range in another layer, or an adjacent range, is fine
    ok = doc("banner2", namespace={"layer": "rails", "start": 0.5, "end": 1.0})
    await client.post("/v1/admin/experiments", json=ok, headers=H)
    assert (await client.post("/v1/admin/experiments/banner2/start", headers=H)).status_code == 200
    # after stopping the first, the overlapping one may start
    await client.post("/v1/admin/experiments/rail-algo/stop", headers=H)
    await client.post("/v1/admin/experiments/banner2/stop", headers=H)
    assert (await client.post("/v1/admin/experiments/banner/start", headers=H)).status_code == 200


async def test_coverage_ramps_in_place_but_new_weights_reseed_and_restart_results(
    client, redis_client, clock
):
    exp = await create_and_start(client)
    assert exp["bucket_version"] == 0 and exp["results_from_ms"] == data.NOW_MS
    redis_client.hset(data.KEYS.experiment_counts(0, "rail-algo"), mapping={"x:control": 10})
    r = await client.patch("/v1/admin/experiments/rail-algo", json={"coverage": 0.3}, headers=H)
    body = r.json()
    assert body["bucket_version_bumped"] is False and body["notice"] is None
    assert body["experiment"]["coverage"] == 0.3 and body["experiment"]["bucket_version"] == 0
    clock.advance(60)
    r = await client.patch(
        "/v1/admin/experiments/rail-algo", json={"weights": [0.2, 0.8]}, headers=H
    )
    body = r.json()
    assert body["bucket_version_bumped"] is True and "re-assigned" in body["notice"]
    after = body["experiment"]
    assert after["bucket_version"] == 1 and after["results_from_ms"] == data.NOW_MS + 60_000
    assert after["results_baseline"] == {"x:control": 10.0}
    results = (await client.get("/v1/admin/experiments/rail-algo/results", headers=H)).json()
    assert results["variants"][0]["exposures"] == 0  # restarted
    # a draft's weights change without any bump
    await client.post("/v1/admin/experiments", json=doc("draft-one"), headers=H)
    r = await client.patch(
        "/v1/admin/experiments/draft-one", json={"weights": [0.1, 0.9]}, headers=H
    )
    assert r.json()["bucket_version_bumped"] is False


async def test_rollback_restores_an_earlier_definition(client):
    await create_and_start(client)
    await client.patch("/v1/admin/experiments/rail-algo", json={"coverage": 0.2}, headers=H)
    r = await client.post(
        "/v1/admin/experiments/rail-algo/rollback", json={"version": 1}, headers=H
    )
    exp = r.json()["experiment"]
    assert exp["coverage"] == 1.0 and exp["status"] == "running" and exp["version"] == 4
    assert exp["rolled_back_to"] == 1 and r.json()["bucket_version_bumped"] is False
    bad = await client.post(
        "/v1/admin/experiments/rail-algo/rollback", json={"version": 99}, headers=H
    )
    assert bad.status_code == 404 and bad.json()["versions"] == [1, 2, 3]


async def test_start_twice_and_unknown_are_clear_errors(client):
    await create_and_start(client)
    r = await client.post("/v1/admin/experiments/rail-algo/start", headers=H)
    assert r.status_code == 409 and "already running" in r.json()["detail"]
    assert (await client.post("/v1/admin/experiments/zzz/stop", headers=H)).status_code == 404


async def test_every_change_is_audited_with_before_and_after(client):
    await create_and_start(client)
    await client.patch("/v1/admin/experiments/rail-algo", json={"coverage": 0.5}, headers=H)
    r = await client.get(
        "/v1/admin/audit", params={"target": "experiment:rail-algo"}, headers=bearer(ADMIN)
    )
    entries = r.json()["entries"]
    assert [e["action"] for e in entries] == [
        "experiment.update",
        "experiment.start",
        "experiment.create",
    ]
    assert entries[0]["before"]["coverage"] == 1.0 and entries[0]["after"]["coverage"] == 0.5
    assert entries[0]["who"].startswith("experimenter:") and entries[0]["ms"] == data.NOW_MS
    assert EXPER not in r.text


async def test_edge_config_reflects_schedule_targeting_and_stop(client):
    hseg = data.hseg("vip")
    await create_and_start(
        client,
        segment_names=["vip"],
        routes=["home"],
        start_ms=data.NOW_MS + 1000,
        stop_ms=data.NOW_MS + 5000,
    )
    cfg = parse_edge_config((await client.get("/v1/edge/config")).json())
    (exp,) = cfg.experiments
    assert exp.segments == (hseg,) and exp.routes == ("home",)
    assert not exp.is_live(data.NOW_MS) and exp.is_live(data.NOW_MS + 2000)
    await client.post("/v1/admin/experiments/rail-algo/stop", headers=H)
    assert parse_edge_config((await client.get("/v1/edge/config")).json()).experiments == ()


@pytest.mark.parametrize(
    "variations",
    [
        [{"name": "boost"}, {"name": "control"}],  # reordered
        [{"name": "control"}, {"name": "boosted"}],  # renamed
    ],
)
async def test_reordering_or_renaming_variations_of_a_running_experiment_reseeds(
    client, variations
):
    exp = await create_and_start(client)
    r = await client.patch(
        "/v1/admin/experiments/rail-algo", json={"variations": variations}, headers=H
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket_version_bumped"] is True and "re-assigned" in body["notice"]
    assert body["experiment"]["bucket_version"] == exp["bucket_version"] + 1
    same = [{"name": "control", "list_variant": "alt"}, {"name": "boosted"}]
    r = await client.patch("/v1/admin/experiments/rail-algo", json={"variations": same}, headers=H)
    assert r.json()["bucket_version_bumped"] is (variations[1]["name"] != "boosted")


async def test_an_experiment_past_its_stop_ends_by_schedule_and_frees_its_range(client, clock):
    await create_and_start(client, stop_ms=data.NOW_MS + 5000)
    rival = doc("rival-algo")
    assert (await client.post("/v1/admin/experiments", json=rival, headers=H)).status_code == 201
    blocked = await client.post("/v1/admin/experiments/rival-algo/start", headers=H)
    assert blocked.status_code == 409
    clock.advance(6)
    await client.app.state.p13n.snapshot.refresh()
    assert parse_edge_config((await client.get("/v1/edge/config")).json()).experiments == ()
    shown = (await client.get("/v1/admin/experiments/rail-algo", headers=H)).json()
    assert shown["status"] == "running" and shown["ended_by_schedule"] is True
    r = await client.post("/v1/admin/experiments/rival-algo/start", headers=H)
    assert r.status_code == 200, r.text
    (live,) = parse_edge_config((await client.get("/v1/edge/config")).json()).experiments
    assert live.key == "rival-algo"


async def test_disjoint_schedules_may_share_a_namespace_range(client):
    await create_and_start(client, start_ms=data.NOW_MS, stop_ms=data.NOW_MS + 5000)
    later = {"start_ms": data.NOW_MS + 5000, "stop_ms": data.NOW_MS + 9000}
    await create_and_start(client, key="later-algo", **later)
    overlapping = {"start_ms": data.NOW_MS + 4000}
    r = await client.post("/v1/admin/experiments", json=doc("third-algo", **overlapping), headers=H)
    assert r.status_code == 201
    r = await client.post("/v1/admin/experiments/third-algo/start", headers=H)
    assert r.status_code == 409 and r.json()["conflicts_with"] in {"rail-algo", "later-algo"}
