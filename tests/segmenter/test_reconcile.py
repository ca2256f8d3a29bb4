"""The batch path: the lake's recomputation agrees with a real processor run, finds a known
injected divergence in each aggregate, and repairs it (audited)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import orjson

from segmenter.connection import connect
from segmenter.metrics import Metrics
from segmenter.processor import Processor, operators_for
from segmenter.reconcile import Window
from segmenter.reconcile_run import reconcile
from segmenter.schema import Keys
from segmenter.segments import load_rules
from tests.support import segmenter as support

KEYS = Keys()
EVER = Window(0, 2**62)


def _p13n(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *argv], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def _run(url: str, archive, **kw):
    params = operators_for(support.settings(url), load_rules()).partition

    async def go():
        client = connect(url)
        try:
            return await reconcile(client, KEYS, archive, partitions=support.PARTITIONS,
                                   params=params, window=EVER, **kw)  # fmt: skip
        finally:
            await client.aclose()

    return asyncio.run(go())


def _some(client, pattern: str) -> bytes:
    return sorted(client.scan_iter(match=pattern, count=1000))[0]


def _state(client):
    state = support.snapshot(client)
    state.pop(KEYS.reconcile_report.encode(), None)
    return state


def test_reconcile_finds_an_injected_divergence_and_repairs_it(single_redis_url, tmp_path):
    client = support.connect_sync(single_redis_url)
    support.load(client, support.mixed_stream(3000))  # duplicates, late, dead, future
    archive = tmp_path / "arc"
    support.run_until_drained(single_redis_url, support.settings(single_redis_url, archive))

    clean = _run(single_redis_url, archive)
    assert not clean.skipped and sum(clean.compared.values()) > 1000
    assert clean.differences == [], clean.differences[:5]

    # A known divergence in each aggregate: a lost write, a doubled one, a stray member.
    pop = _some(client, "p13n:{p:1}:pop:*")
    item, score = client.zrange(pop, 0, 0, withscores=True)[0]
    client.zincrby(pop, 7, item)
    exp = _some(client, "p13n:{p:2}:exp:*")
    field = sorted(client.hkeys(exp))[0]
    client.hincrby(exp, field, -1)
    covis = _some(client, "p13n:{p:3}:covis:*")
    client.zadd(covis, {"sku-not-co-visited": 3})
    before = _state(client)

    found = _run(single_redis_url, archive)
    got = {(d.aggregate, d.partition, d.member, d.stream - d.batch) for d in found.differences}
    assert got == {("popularity", 1, item.decode(), 7), ("experiments", 2, field.decode(), -1),
                   ("covisitation", 3, "sku-not-co-visited", 3)}  # fmt: skip
    stored = orjson.loads(client.get(KEYS.reconcile_report))
    assert stored["differences"] == {"popularity": 1, "covisitation": 1, "experiments": 1}
    assert _state(client) == before  # a report changes nothing but the report

    fixed = _run(single_redis_url, archive, repair=True, who="test")
    assert fixed.repaired == 3
    assert client.zscore(pop, item) == score
    assert client.zscore(covis, "sku-not-co-visited") is None
    audit = [f for _, f in client.xrange(KEYS.audit) if f[b"action"] == b"reconcile.repair"]
    assert len(audit) == 3 and all(f[b"who"] == b"test" for f in audit)
    assert {f[b"target"] for f in audit} == {b"partition:1", b"partition:2", b"partition:3"}
    assert _run(single_redis_url, archive).differences == []
    client.close()


def test_p13n_reconcile_cli(single_redis_url, tmp_path) -> None:
    client = support.connect_sync(single_redis_url)
    support.load(client, support.valid_entries(800))
    archive = tmp_path / "arc"
    support.run_until_drained(single_redis_url, support.settings(single_redis_url, archive))
    pop = _some(client, "p13n:{p:0}:pop:*")
    item = client.zrange(pop, 0, 0)[0]
    client.zincrby(pop, 2, item)
    args = ("--from", "2000-01-01", "--to", "2100-01-01", "--redis-url", single_redis_url,
            "--archive-dir", str(archive))  # fmt: skip
    env_free = _p13n("reconcile", *args)
    assert env_free.returncode == 0, env_free.stderr
    assert "differences popularity=1 covisitation=0 experiments=0" in env_free.stdout
    assert f"popularity p0 {pop.decode().rsplit(':', 1)[1]} {item.decode()}" in env_free.stdout
    repaired = _p13n("reconcile", *args, "--repair")
    assert "repaired 1" in repaired.stdout
    assert "popularity=0" in _p13n("reconcile", *args).stdout
    bad = _p13n("reconcile", "--from", "2030-01-01", "--to", "2020-01-01", "--archive-dir",
                str(archive), "--redis-url", single_redis_url)  # fmt: skip
    assert bad.returncode == 2 and "--from" in bad.stderr
    client.close()


def test_the_processor_reconciles_on_its_schedule_and_repairs(single_redis_url, tmp_path):
    client = support.connect_sync(single_redis_url)
    support.load(client, support.valid_entries(600))
    s = support.settings(single_redis_url, tmp_path / "arc", reconcile_interval_s=1,
                         reconcile_window_s=2_000_000_000, reconcile_repair=True)  # fmt: skip
    metrics = Metrics()

    async def go() -> None:
        aclient = connect(single_redis_url)
        stop = asyncio.Event()
        task = asyncio.create_task(Processor(s, aclient, metrics=metrics).run(stop))
        deadline = time.monotonic() + 60
        try:
            while not support.drained(client):
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.05)
            pop = _some(client, "p13n:{p:0}:pop:*")
            item, score = client.zrange(pop, 0, 0, withscores=True)[0]
            client.zincrby(pop, 5, item)  # diverges until a scheduled run repairs it
            while client.zscore(pop, item) != score:
                assert time.monotonic() < deadline, "no scheduled repair in time"
                assert not task.done()
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
            await aclient.aclose()

    asyncio.run(go())
    value = metrics.registry.get_sample_value
    assert value("p13n_segmenter_reconcile_repaired_total") == 1
    assert value("p13n_segmenter_reconcile_runs_total", {"outcome": "differences"}) >= 1
    report = orjson.loads(client.get(KEYS.reconcile_report))
    assert report["repaired"] == 1 and report["sample"][0]["stream"] - report["sample"][0][
        "batch"] == 5  # fmt: skip
    client.close()
