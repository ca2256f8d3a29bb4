"""The global holdout at the edge: decided like the origin, nothing personal, marked."""

from __future__ import annotations

from cache_keys.experiments import HOLDOUT_KEY, in_holdout
from cache_keys.segments import ANON_HSEG
from edge.answer import exposure_batch
from edge.plan import decide
from origin.assignment import holdout_variant
from tests.support import data
from tests.support.edge import HSEG, NOW_MS, config, experiment, make_settings, parts, token

SETTINGS = make_settings(ORIGIN_URL="http://origin.test")
SHOPPERS = [data.sid(n) for n in range(300)]


def _plan(shopper: str, share: float, route: str = "home"):
    cfg = config(holdout=share, experiments=[experiment()])
    return decide(parts(route, shopper=shopper, seg=token()), cfg, SETTINGS, NOW_MS)


def test_the_edge_and_the_origin_hold_out_the_same_shoppers():
    plans = {s: _plan(s, 0.3) for s in SHOPPERS}
    held = {s for s, p in plans.items() if p.variants.get(HOLDOUT_KEY) == "holdout"}
    assert 40 < len(held) < 140  # about 30%, deterministic
    for s, plan in plans.items():
        assert {HOLDOUT_KEY: plan.variants[HOLDOUT_KEY]} == holdout_variant(0.3, s)
        assert (s in held) == in_holdout(s, 0.3)


def test_a_held_out_shopper_gets_the_anonymous_list_and_no_experiment():
    shopper = next(s for s in SHOPPERS if in_holdout(s, 0.3))
    plan = _plan(shopper, 0.3)
    assert plan.variants == {HOLDOUT_KEY: "holdout"}
    assert plan.identity.hseg == ANON_HSEG and plan.identity.context is None
    assert plan.list_url.endswith(f"/v1/segments/{ANON_HSEG}/list?variant=control")
    assert plan.segment_token_url is None
    assert _plan(shopper, 0.3, route="buy-again").personal_url is None
    assert shopper not in plan.key.path  # the arm is in the key, never the shopper
    batch = exposure_batch(plan, NOW_MS)
    assert [(e["experiment"], e["variant"]) for e in batch["events"]] == [(HOLDOUT_KEY, "holdout")]


def test_the_others_keep_their_segment_and_experiments_and_say_personalized():
    shopper = next(s for s in SHOPPERS if not in_holdout(s, 0.3))
    plan = _plan(shopper, 0.3)
    assert plan.variants == {"rail-algo": "boost", HOLDOUT_KEY: "personalized"}
    assert plan.identity.hseg == HSEG
    assert _plan(shopper, 0.0).variants == {"rail-algo": "boost"}  # no holdout: no mark
    held_key = _plan(next(s for s in SHOPPERS if in_holdout(s, 0.3)), 0.3).key.path
    assert plan.key.path != held_key
