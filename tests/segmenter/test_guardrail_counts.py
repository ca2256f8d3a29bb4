"""Guardrail counters: exposure events and degraded-answer markers per variant, exactly once
(retries and redelivery), the markers never counted as exposures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import redis

from segmenter import event
from segmenter.event import Event
from segmenter.schema import GROUP, partition_of
from tests.support import segmenter as support
from tests.support.segmenter import KEYS, PARTITIONS

T0 = 1_700_000_000_000
DAY = 86_400_000


def _entries() -> list[tuple[str, int, bytes]]:
    """Per shopper-day one exposure event (the edge's daily id) and, after a degraded answer,
    a marker with its own daily id; retries repeat both."""
    evs: list[Event] = []
    for n in range(40):
        user, variant = f"u{n}", ("a", "b")[n % 2]
        degraded = variant == "b" and n % 4 == 1  # 10 of b's 20 shoppers saw a degraded answer
        for day in range(2):  # two days: two exposure events, one shopper exposed
            ts = T0 + day * DAY + n
            ev = Event(f"x-{user}-{day}", "exposure", user, ts, experiment="hero",
                       variant=variant)  # fmt: skip
            evs += [ev, ev]  # the client's retry: a duplicate
            if degraded and day == 0:  # two degraded answers that day: one marker id
                marker = replace(ev, event_id=ev.event_id + "-d", degraded=True)
                evs += [marker, replace(marker, ts=ts + 5)]
    evs.append(Event("x-bot-d", "exposure", "bot1", T0, experiment="hero", variant="b",
                     bot=True, degraded=True))  # fmt: skip
    evs.sort(key=lambda e: e.ts)
    return [(f"{e.ts}-{i}", partition_of(e.user, PARTITIONS), event.encode(e))
            for i, e in enumerate(evs)]  # fmt: skip


def _counts(client: redis.Redis) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in range(PARTITIONS):
        for k, v in client.hgetall(KEYS.experiment_counts(p, "hero")).items():
            out[k.decode()] = out.get(k.decode(), 0) + int(v)
    return out


def test_degraded_exposures_count_once_per_event_and_survive_redelivery(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    entries = _entries()
    assert event.decode(entries[0][2]).degraded is False  # type: ignore[union-attr]
    support.load(redis_client, entries)
    s = support.settings(redis_url, tmp_path / "a", batch_max_events=7)
    support.run_until_drained(redis_url, s)
    counts = _counts(redis_client)
    want = {"x:a": 20, "x:b": 20, "e:a": 40, "e:b": 40, "g:b": 10}
    assert {k: counts.get(k, 0) for k in [*want, "g:a"]} == {**want, "g:a": 0}
    # Redeliver everything: counts do not move.
    for p in range(PARTITIONS):
        redis_client.xgroup_setid(KEYS.stream(p), GROUP, id="0")
    support.run_until_drained(redis_url, s)
    assert _counts(redis_client) == counts


def test_a_degraded_exposure_is_written_in_version_4_and_reads_back() -> None:
    ev = Event("x1", "exposure", "u1", T0, experiment="hero", variant="b", degraded=True)
    doc = event.to_doc(ev)
    assert doc["v"] == 4 and doc["degraded"] is True
    assert event.validate(doc) == ev
    plain = event.to_doc(Event("x2", "exposure", "u1", T0, experiment="hero", variant="b"))
    assert plain["v"] == 1 and "degraded" not in plain
    bad = event.validate({**doc, "degraded": "yes"})
    assert bad == event.Rejection("degraded", "must be true or false")
    old = event.validate({**doc, "v": 3})
    assert isinstance(old, event.Rejection) and old.field == "degraded"
