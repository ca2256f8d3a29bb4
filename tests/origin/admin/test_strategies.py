"""Named ranking strategies in experiment definitions, and overlapping experiments."""

from __future__ import annotations

import pytest

from cache_keys.wire import Experiment, Variation
from origin.recommend.endpoint import _strategy
from origin.recommend.ranking import ROUTE_STRATEGIES
from origin.strategies import CATALOG
from tests.support.data import EXPER, bearer

pytestmark = pytest.mark.anyio
H = bearer(EXPER)


def doc(key="rail-strategy", variations=None, **over):
    base = {
        "key": key,
        "variations": variations
        or [{"name": "control", "strategy": "default"}, {"name": "due", "strategy": "due-first"}],
        "routes": ["home"],
    }
    return {**base, **over}


async def start(client, body):
    r = await client.post("/v1/admin/experiments", json=body, headers=H)
    assert r.status_code == 201, r.text
    return await client.post(f"/v1/admin/experiments/{body['key']}/start", headers=H)


async def test_the_catalog_says_what_each_strategy_does(client):
    r = await client.get("/v1/admin/strategies", headers=H)
    assert r.status_code == 200
    listed = {s["name"]: s for s in r.json()["strategies"]}
    assert set(listed) == set(CATALOG)
    assert all(s["description"] for s in listed.values())
    assert listed["trending"]["list_variant"] == "trending"
    assert (await client.get("/v1/admin/strategies")).status_code == 401


async def test_a_variation_picks_a_strategy_by_name_and_gets_its_weights(client):
    r = await client.post("/v1/admin/experiments", json=doc(), headers=H)
    assert r.status_code == 201, r.text
    due = r.json()["experiment"]["variations"][1]
    want = CATALOG["due-first"]
    assert due["strategy"] == "due-first"
    assert due["origin_weights"] == dict(want.origin_weights)
    assert due["weights"] == dict(want.edge_weights)
    assert due["list_variant"] == want.list_variant
    # a change that does not touch the variations keeps them as written out
    r = await client.patch("/v1/admin/experiments/rail-strategy", json={"coverage": 0.5}, headers=H)
    assert r.status_code == 200, r.text
    assert r.json()["experiment"]["variations"][1] == due
    # the written-out form sent back as read is accepted as it is
    variations = r.json()["experiment"]["variations"]
    r = await client.patch(
        "/v1/admin/experiments/rail-strategy", json={"variations": variations}, headers=H
    )
    assert r.status_code == 200, r.text
    assert r.json()["experiment"]["variations"][1] == due


@pytest.mark.parametrize(
    ("variation", "field", "says"),
    [
        ({"name": "b", "strategy": "fastest"}, "variations[1].strategy", "'fastest'"),
        ({"name": "b", "strategy": 3}, "variations[1].strategy", "strategy"),
        (
            {"name": "b", "strategy": "due-first", "weights": {"base": 2.0}},
            "variations[1].weights",
            "decides",
        ),
        (
            {"name": "b", "strategy": "trending", "list_variant": "control"},
            "variations[1].list_variant",
            "decides",
        ),
    ],
)
async def test_bad_strategies_are_refused_naming_them(client, variation, field, says):
    body = doc(variations=[{"name": "control"}, variation])
    r = await client.post("/v1/admin/experiments", json=body, headers=H)
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field and says in r.json()["detail"]
    if says == "'fastest'":
        assert r.status_code == 422


def _exp(key, *variations):
    return Experiment(key, key, variations, (1.0 / len(variations),) * len(variations))


def test_the_origin_applies_a_variations_origin_weights_and_the_first_experiment_wins():
    due = Variation("due", weights={"recency": 9.0}, origin_weights={"repeat": 2.0})
    trend = Variation("t", list_variant="trending", weights={"recency": 0.0})
    other = Variation("o", list_variant="other", origin_weights={"repeat": 0.5, "base": 3.0})
    assigned = {"b-exp": (_exp("b-exp", Variation("c"), other), 1)}
    assigned["a-exp"] = (_exp("a-exp", Variation("c"), due, trend), 1)
    strategy, variant = _strategy(assigned, "home")
    # origin weights, not the edge's (recency stays the route's); a-exp sorts first and wins
    assert strategy.repeat == 2.0 and strategy.recency == ROUTE_STRATEGIES["home"].recency
    assert strategy.base == 3.0 and variant == "other"
    assigned["a-exp"] = (assigned["a-exp"][0], 2)
    strategy, variant = _strategy(assigned, "home")
    # a legacy variation (no origin weights) still reweights the origin by its shared names;
    # as at the edge, the first experiment's list variant wins
    assert strategy.recency == 0.0 and variant == "trending" and strategy.repeat == 0.5


async def test_two_experiments_changing_the_same_route_without_a_layer_are_refused(client):
    assert (await start(client, doc())).status_code == 200
    r = await start(
        client, doc("rail-other", variations=[{"name": "a"}, {"name": "b", "strategy": "budget"}])
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["conflicts_with"] == "rail-strategy" and "route home" in problem["detail"]
    # on another route they do not meet
    r = await start(client, doc("pdp-exp", routes=["pdp"]))
    assert r.status_code == 200 and r.json()["warnings"] == []


async def test_an_overlap_that_cannot_mask_an_arm_is_allowed_with_a_warning(client):
    r = await client.post("/v1/admin/experiments", json=doc(routes=[]), headers=H)
    assert r.json()["warnings"] == []
    assert (
        await client.post("/v1/admin/experiments/rail-strategy/start", headers=H)
    ).status_code == 200
    plain = doc("banner", variations=[{"name": "a"}, {"name": "b"}], coverage=1.0)
    r = await client.post("/v1/admin/experiments", json=plain, headers=H)
    assert r.status_code == 201 and "'rail-strategy'" in r.json()["warnings"][0]
    r = await client.post("/v1/admin/experiments/banner/start", headers=H)
    assert r.status_code == 200
    (warning,) = r.json()["warnings"]
    assert "'rail-strategy' on route home" in warning and "100%" in warning
    # a draft that would be refused says so when created
    clash = doc("clash", variations=[{"name": "a"}, {"name": "b", "strategy": "trending"}])
    r = await client.post("/v1/admin/experiments", json=clash, headers=H)
    assert r.status_code == 201 and r.json()["warnings"][0].startswith(
        "starting it would be refused"
    )


async def test_one_layer_keeps_two_rail_experiments_apart(client):
    ns = {"layer": "rails", "start": 0.0, "end": 0.5}
    assert (await start(client, doc(namespace=ns))).status_code == 200
    other = doc("rail-other", namespace={"layer": "rails", "start": 0.5, "end": 1.0})
    r = await start(client, other)
    assert r.status_code == 200 and r.json()["warnings"] == []
