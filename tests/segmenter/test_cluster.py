"""Scale-out on a real Redis Cluster: processor processes sharing partitions, and failover.

Both tests run real ``p13n segmenter run`` subprocesses and kill them (or a Redis master)
with SIGKILL; both compare the cluster's final state with a reference run on one Redis.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest
import redis

from ops import shop
from ops.local.cluster import LocalCluster
from origin.app import create_app
from origin.settings import Settings
from segmenter import archive, event
from segmenter.connection import connect_sync
from segmenter.schema import GROUP
from tests.support import segmenter as support
from tests.support.asgi import app_client
from tests.support.backends import cluster_url_of
from tests.support.process import Process
from tests.support.segmenter import KEYS, PARTITIONS
from tests.support.timing import POLL_S, scaled, wait_until

pytestmark = pytest.mark.cluster
COUNTERS = ("applied", "duplicate", "late", "dead", "erased")


def _owners(client: redis.Redis) -> dict[int, str]:
    """partition -> consumer name of the lease holder ("" when free)."""
    out = {}
    for p in range(PARTITIONS):
        owner = (client.hget(KEYS.partition_meta(p), "owner") or b"").decode()
        out[p] = owner.rpartition(":")[0]
    return out


def _pending_by_consumer(client: redis.Redis) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for p in range(PARTITIONS):
        for c in client.xpending(KEYS.stream(p), GROUP)["consumers"]:
            out[c["name"].decode()] += int(c["pending"])
    return out


def _stream_entries(client: redis.Redis) -> list[tuple[str, int, bytes]]:
    return [
        (sid.decode(), p, f[b"e"])
        for p in range(PARTITIONS)
        for sid, f in client.xrange(KEYS.stream(p))
    ]


def _reference(redis_factory, entries, tmp_path: Path) -> dict:
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    support.load(client, entries)
    support.run_until_drained(server.url, support.settings(server.url, tmp_path / "ref"))
    snap = support.snapshot(client)
    client.close()
    return snap


@pytest.mark.timeout(120)
def test_processes_share_partitions_and_take_over_a_dead_ones(
    cluster_redis_url, redis_factory, tmp_path
) -> None:
    client = connect_sync(cluster_redis_url)
    masters = {client.get_node_from_key(KEYS.stream(p)).port for p in range(PARTITIONS)}
    assert len(masters) >= 2, "the partitions should spread over the cluster's masters"
    support.load(client, [])
    opts = {"P13N_BATCH_MAX_EVENTS": "10", "P13N_CLAIM_IDLE_MS": "1000"}
    b = support.spawn(cluster_redis_url, tmp_path / "b", P13N_CONSUMER="seg-b", **opts)
    a = None
    try:
        _wait_for(lambda: set(_owners(client).values()) == {"seg-b"}, "seg-b to own all", b)
        # seg-a SIGKILLs itself just before its 60th write step: mid-batch, entries pending.
        a = support.spawn(
            cluster_redis_url, tmp_path / "a", P13N_CONSUMER="seg-a",
            P13N_TEST_KILL_AT_WRITE="60", **opts,
        )  # fmt: skip
        _wait_for(lambda: set(_owners(client).values()) == {"seg-a", "seg-b"}, "a share", b)
        shared = _owners(client)
        entries = support.mixed_stream(3000, seed=13)
        pipe = client.pipeline(transaction=False)  # the groups exist: append only
        for sid, p, raw in entries:
            pipe.xadd(KEYS.stream(p), {"e": raw}, id=sid)
        pipe.execute()
        assert a.wait(60) == -9
        orphaned = _pending_by_consumer(client)["seg-a"]
        support.wait_drained(client, 60, b)
        owners = _owners(client)
    finally:
        support.stop(b)
        if a is not None:
            support.stop(a)
    a_parts = sorted(p for p, o in shared.items() if o == "seg-a")
    print(
        f"scale-out: partitions on {len(masters)} masters; shared {shared}; seg-a killed "
        f"mid-batch with {orphaned} pending entries; afterwards {owners}"
    )
    assert a_parts and len(a_parts) < PARTITIONS  # both processes held partitions
    assert orphaned > 0
    assert set(owners.values()) == {"seg-b"}  # seg-b took over seg-a's partitions...
    assert _pending_by_consumer(client)["seg-a"] == 0  # ... and its pending entries
    assert support.snapshot(client) == _reference(redis_factory, entries, tmp_path)
    client.close()


def _wait_for(check, what: str, proc: Process, timeout_s: float = 30) -> None:
    def alive_and_done() -> bool:
        assert proc.poll() is None, proc.tail()
        return bool(check())

    wait_until(alive_and_done, timeout_s, f"timed out waiting for {what}")


def _archive_repeats(root: Path) -> int:
    """Stream entries archived more than once: batches that ran again after an error."""
    ids = collections.Counter(
        (d["partition"], d["stream_id"])
        for path in root.glob("dt=*/hour=*/*.jsonl.gz")
        for d in archive._lines(path)
    )
    return sum(n - 1 for n in ids.values())


async def _post_through_failover(settings: Settings, batches, kill) -> tuple[set[str], int, float]:
    """Post every batch through the collector (retrying 503s); ``kill`` runs mid-way.

    Returns the acknowledged event ids, the 503s, and the longest wait for one batch."""
    accepted: set[str] = set()
    refused, longest = 0, 0.0
    async with app_client(create_app(settings)) as http:
        for n, batch in enumerate(batches):
            if n == len(batches) // 3:
                await asyncio.to_thread(kill)
            body = {"events": [event.to_doc(e) for e in batch]}
            started = deadline = time.monotonic()
            deadline += scaled(30)
            while (r := await http.post("/v1/events", json=body)).status_code != 202:
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "the origin did not recover"
                refused += 1
                await asyncio.sleep(POLL_S)  # a client's retry after a 503
            longest = max(longest, time.monotonic() - started)
            accepted.update(e.event_id for e in batch)
        ready = (await http.get("/readyz")).status_code
    assert ready == 200
    return accepted, refused, longest


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_master_failover_reprocesses_from_the_stream(redis_factory, tmp_path) -> None:
    """Kill the master of partition 0 mid-run; processor and origin recover by themselves.

    Reported: acknowledged events missing from the streams afterwards (asynchronous
    replication), batches re-processed from the stream, and keys whose state differs from
    a reference run over the entries that survived (effects lost across slots)."""
    with LocalCluster(node_timeout_ms=1000) as cluster:
        url = cluster_url_of(cluster)
        client = connect_sync(url)
        support.load(client, [])
        start = int(time.time() * 1000) - 60_000
        evs = list(shop.events(3000, seed=17, start_ms=start))
        batches = [evs[i : i + 50] for i in range(0, len(evs), 50)]
        proc = support.spawn(
            url, tmp_path / "arc", P13N_CONSUMER="seg-f", P13N_BATCH_MAX_EVENTS="25",
            P13N_CLAIM_IDLE_MS="2000",
        )  # fmt: skip
        victim = client.get_node_from_key(KEYS.stream(0)).port
        settings = Settings(redis_url=url, partitions=PARTITIONS, collector_burst=10**6)
        try:
            accepted, refused, longest = asyncio.run(
                _post_through_failover(settings, batches, lambda: cluster.node(victim).kill())
            )
            cluster.wait_ok()
            promoted = victim not in cluster.master_ports()
            support.wait_drained(client, 90, proc)
        finally:
            support.stop(proc)
        survived = _stream_entries(client)
        in_stream = {e.event_id for e in support.valid_events(survived)}
        counted = sum(
            int(client.hget(KEYS.partition_meta(p), n) or 0)
            for p in range(PARTITIONS)
            for n in COUNTERS
        )
        live = support.snapshot(client)
        client.close()
    reference = _reference(redis_factory, survived, tmp_path)
    differing = sorted(k for k in live.keys() | reference.keys() if live.get(k) != reference.get(k))
    lost = len(accepted - in_stream)
    print(
        f"failover: killed master {victim} (partition 0's slot) after {len(batches) // 3} of "
        f"{len(batches)} batches; collector 503s={refused}, longest batch wait={longest:.1f} s; "
        f"acknowledged "
        f"events={len(accepted)}, missing from the streams after failover={lost}; "
        f"stream entries={len(survived)}, counted once each={counted}; "
        f"entries re-processed={_archive_repeats(tmp_path / 'arc')}; "
        f"keys differing from a reference run={len(differing)} {differing[:5]}"
    )
    assert promoted  # a replica took over; the origin and the processor followed by themselves
    assert counted == len(survived)  # every surviving entry applied exactly once
    assert in_stream <= accepted
    assert not differing, differing
