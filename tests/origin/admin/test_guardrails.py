"""Guardrails per arm against a real Redis: the origin's buffered counters, the results'
guardrails section, and the auto-stop (one stopper across several origin processes)."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter

import pytest

from origin.admin.autostop import check_auto_stop
from origin.admin.guardrails import guardrails
from origin.app import create_app
from origin.guardrails import GuardrailCounter
from tests.support.asgi import app_client
from tests.support.data import ADMIN, EXPER, KEYS, bearer, sid
from tests.support.timing import POLL_S, async_wait_until, scaled

pytestmark = pytest.mark.anyio
H = bearer(EXPER)


def definition(key: str, start: float, **over):
    return {
        "key": key,
        "variations": [{"name": "control"}, {"name": "treat"}],
        "weights": [0.5, 0.5],
        "namespace": {"layer": "rails", "start": start, "end": start + 0.5},
        **over,
    }


async def started(client, key: str, start: float = 0.0, **over) -> None:
    r = await client.post("/v1/admin/experiments", json=definition(key, start, **over), headers=H)
    assert r.status_code == 201, r.text
    assert (await client.post(f"/v1/admin/experiments/{key}/start", headers=H)).status_code == 200


def seed_counts(redis_client, key: str, edge: dict[str, int], origin: dict[str, int]) -> None:
    redis_client.hset(KEYS.experiment_counts(0, key), mapping=edge)
    if origin:
        redis_client.hset(KEYS.guardrails(key), mapping=origin)


async def test_origin_answers_are_counted_per_arm_and_flushed(client, redis_client):
    await started(client, "rail-algo", coverage=1.0)
    seen: Counter[str] = Counter()
    for n in range(30):
        r = await client.get("/v1/recommendations", headers={"Cookie": f"p13n_sid={sid(n)}"})
        assert r.status_code == 200
        variant = r.json()["variants"].get("rail-algo")
        if variant:
            seen[variant] += 1
    assert sum(seen.values()) > 0
    key = KEYS.guardrails("rail-algo")
    deadline = time.monotonic() + scaled(10)
    while True:  # the app's background task flushes every second
        got = {k.decode(): int(v) for k, v in redis_client.hgetall(key).items()}
        if sum(v for k, v in got.items() if k.startswith("n:")) == sum(seen.values()):
            break
        assert time.monotonic() < deadline, got
        await asyncio.sleep(POLL_S)
    assert {k[2:]: v for k, v in got.items() if k.startswith("n:")} == dict(seen)
    assert all(got.get(f"s:{v}", 0) <= n for v, n in seen.items())
    assert not any(k.startswith("f:") for k in got)  # nothing was degraded


async def test_the_counter_sums_in_memory_and_keeps_what_a_failed_flush_did_not_write(
    client, redis_client
):
    state = client.app.state.p13n
    counter = GuardrailCounter()
    counter.record({"e1": "a", "p13n-holdout": "personalized"}, slow=True, degraded=False)
    counter.record({"e1": "a"}, slow=False, degraded=True)
    counter.record({"e1": "b"}, slow=False, degraded=False)
    assert redis_client.exists(KEYS.guardrails("e1")) == 0  # nothing written per answer
    redis_client.set(KEYS.guardrails("e1"), b"not a hash")  # HINCRBY fails: WRONGTYPE
    with pytest.raises(Exception, match="refused"):
        await counter.flush(state)
    redis_client.delete(KEYS.guardrails("e1"))
    assert await counter.flush(state) == 4
    got = {k.decode(): int(v) for k, v in redis_client.hgetall(KEYS.guardrails("e1")).items()}
    assert got == {"n:a": 2, "s:a": 1, "f:a": 1, "n:b": 1}
    assert await counter.flush(state) == 0
    assert redis_client.exists(KEYS.guardrails("p13n-holdout")) == 0


async def test_results_show_each_arms_guardrails_against_control(client, redis_client):
    await started(client, "g1")
    seed_counts(
        redis_client, "g1",
        {"x:control": 1000, "x:treat": 1000, "e:control": 1500, "e:treat": 1500,
         "g:control": 15, "g:treat": 300},
        {"n:control": 800, "n:treat": 800, "s:control": 8, "s:treat": 9, "f:treat": 1},
    )  # fmt: skip
    doc = (await client.get("/v1/admin/experiments/g1/results", headers=H)).json()
    control, treat = doc["guardrails"]["arms"]
    assert control["degraded"] == {"events": 15, "of": 1500, "rate": 0.01}
    assert treat["degraded"]["rate"] == 0.2 and treat["slow"] == {"events": 9, "of": 800,
                                                                  "rate": 0.01125}  # fmt: skip
    assert control["error"] == {"events": 0, "of": 800, "rate": 0.0}
    worse = treat["vs_control"]["degraded"]
    assert worse["worse"] is True and worse["sequential_ci"][0] > 0
    assert worse["ci"][0] <= worse["difference"] <= worse["ci"][1]
    assert treat["vs_control"]["slow"]["worse"] is False
    assert doc["guardrails"]["worse"] == {"treat": ["degraded"]}


async def test_auto_stop_stops_a_clearly_worse_treatment_once_and_leaves_an_a_a_running(
    client, redis_client, settings, clock
):
    redis_client.set(KEYS.guardrail_lock, b"test", px=60_000)  # no round while we seed
    await started(client, "bad", 0.0, auto_stop=True)
    await started(client, "same", 0.5, auto_stop=True)
    await started(client, "unwatched", 0.0, auto_stop=False, namespace=None, routes=["pdp"])
    bad = {"e:control": 2000, "e:treat": 2000, "g:control": 20, "g:treat": 400}
    seed_counts(redis_client, "bad", bad, {})
    seed_counts(redis_client, "unwatched", bad, {})
    seed_counts(redis_client, "same", {**bad, "g:treat": 20}, {"n:control": 900, "n:treat": 900})
    others = [create_app(settings, clock=clock) for _ in range(3)]
    async with app_client(others[0]), app_client(others[1]), app_client(others[2]):
        assert await check_auto_stop(others[0].state.p13n) == []  # the round is taken
        redis_client.delete(KEYS.guardrail_lock)
        # four processes (their own scheduler loops too) race for the round
        states = [client.app.state.p13n, *(a.state.p13n for a in others)]
        rounds = await asyncio.gather(*(check_auto_stop(st) for st in states))

        async def stopped_by_someone() -> bool:
            r = await client.get("/v1/admin/experiments/bad", headers=H)
            return r.json()["status"] == "stopped"

        await async_wait_until(stopped_by_someone, 10, "the worse experiment stopped")
    assert [e["key"] for r in rounds for e in r] in ([], ["bad"])
    statuses = {}
    for key in ("bad", "same", "unwatched"):
        r = await client.get(f"/v1/admin/experiments/{key}", headers=H)
        statuses[key] = r.json()["status"]
    assert statuses == {"bad": "stopped", "same": "running", "unwatched": "running"}
    reason = (await client.get("/v1/admin/experiments/bad", headers=H)).json()
    why = reason["stopped_by_guardrail"]
    assert why["variant"] == "treat" and why["guardrail"] == "degraded"
    assert why["figures"]["treatment"] == {"events": 400, "of": 2000, "rate": 0.2}
    assert why["figures"]["control"]["rate"] == 0.01 and why["figures"]["sequential_ci"][0] > 0
    audit = await client.get("/v1/admin/audit", params={"action": "experiment.auto_stop"},
                             headers=bearer(ADMIN))  # fmt: skip
    (entry,) = audit.json()["entries"]
    assert entry["who"].startswith("guardrails:") and entry["target"] == "experiment:bad"


@pytest.mark.parametrize("value", ["yes", 1, None])
async def test_auto_stop_must_be_a_boolean(client, value):
    r = await client.post("/v1/admin/experiments", json=definition("v1", 0.0, auto_stop=value),
                          headers=H)  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "auto_stop", r.text
    ok = await client.post("/v1/admin/experiments", json=definition("v2", 0.0), headers=H)
    assert ok.json()["experiment"]["auto_stop"] is False


def test_a_a_experiments_peeked_often_are_rarely_called_worse() -> None:
    """Simulation: 400 A/A experiments (2% degraded in both arms), looked at every 500
    exposures per arm up to 10,000: the share ever called worse stays at or under alpha."""
    rng = random.Random(20)
    p, step, looks, runs = 0.02, 500, 20, 400
    sd = math.sqrt(step * p * (1 - p))
    called = 0
    for _ in range(runs):
        k = {"control": 0, "treat": 0}
        for look in range(1, looks + 1):
            for arm in k:  # a chunk of 500 Bernoulli(p) draws, normal approximation
                k[arm] += max(0, round(rng.gauss(step * p, sd)))
            edge = {f"e:{a}": look * step for a in k} | {f"g:{a}": n for a, n in k.items()}
            if guardrails(["control", "treat"], edge, {}, 0.05)["worse"]:
                called += 1
                break
    assert called / runs <= 0.05, called
