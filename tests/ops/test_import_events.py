"""``p13n import events``: the collector's checks without its rate limit, dead letters with the
file and line, identify links, exactly once across re-runs and crashes (issue 18, item 3)."""

from __future__ import annotations

import gzip
import os
import signal
import time
from pathlib import Path

import msgpack
import orjson
import pytest
import redis

from ops.cli import main
from ops.imports import events as imports
from ops.imports.events import ImportOptions, import_events
from ops.imports.progress import Progress
from segmenter import event
from segmenter.schema import Keys, partition_of, tombstone_digest
from segmenter.shoppers import ShopperIds
from tests.support.backends import BACKENDS
from tests.support.data import sid
from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import POLL_S, scaled

KEYS = Keys()
PARTS = 4
T0 = 1_700_000_000_000
ANON, CUSTOMER, ERASED = sid(1), "cust_48213", sid(2)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_redis_url"))


@pytest.fixture
def client(url: str):
    from segmenter.connection import connect_sync  # noqa: PLC0415

    c = connect_sync(url)
    yield c
    c.close()


def opts(**kw: object) -> ImportOptions:
    return ImportOptions(keys=KEYS, partitions=PARTS, **kw)  # type: ignore[arg-type]


def doc(i: int, user: str = "cust_1", **kw: object) -> dict[str, object]:
    return {"v": 1, "event_id": f"e{i}", "type": "view", "user": user, "item": f"sku-{i % 9}",
            "ts": T0 + i * 1000, "session": "s1", **kw}  # fmt: skip


def lines_file(path: Path, rows: list[bytes], gz: bool = False) -> Path:
    body = b"\n".join(rows) + b"\n"
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def streamed(c: redis.Redis) -> list[event.Event]:
    out = []
    for p in range(PARTS):
        for _, f in c.xrange(KEYS.stream(p)):
            ev = event.decode(f[b"e"])
            assert isinstance(ev, event.Event)
            assert partition_of(ev.user, PARTS) == p
            out.append(ev)
    return sorted(out, key=lambda e: e.event_id)


def state(c: redis.Redis) -> dict[str, object]:
    """Every stream's entries (bytes), the DLQ's payloads, links and ledgers: what a second
    import must not change."""
    snap: dict[str, object] = {}
    for p in range(PARTS):
        snap[f"s{p}"] = [f for _, f in c.xrange(KEYS.stream(p))]
        snap[f"i{p}"] = c.hgetall(KEYS.imports(p))
    snap["dlq"] = [
        {k: v for k, v in f.items() if k != b"received_ms"} for _, f in c.xrange(KEYS.dlq)
    ]
    snap["link"] = c.get(KEYS.link(ANON))
    snap["anons"] = c.smembers(KEYS.anons(CUSTOMER))
    return snap


def history(tmp_path: Path, gz: bool = True) -> Path:
    rows = [orjson.dumps(doc(i)) for i in range(1, 31)]
    rows[4] = b'{"v": 1, "event_id": "broken"'  # line 5: not JSON
    rows[9] = orjson.dumps(doc(10, user="-dash"))  # line 10: no shopper id
    rows[14] = orjson.dumps({**doc(15), "colour": "red"})  # line 15: unknown field
    rows[19] = orjson.dumps(doc(20, ts=T0 * 2))  # line 20: in the future
    rows[24] = orjson.dumps(doc(3))  # line 25: a duplicate of line 3
    rows += [
        orjson.dumps(doc(40, user=ANON, session="web1")),  # line 31: anonymous browsing
        orjson.dumps(
            {
                "v": 3,  # identify and anon: registry version 3
                "event_id": "i1",
                "type": "identify",
                "user": CUSTOMER,
                "anon": ANON,
                "session": "web1",
                "ts": T0 + 41_000,
            }
        ),
        orjson.dumps(doc(42, user=ANON, session="web1")),  # line 33: credited to the customer
        orjson.dumps(doc(43, user=ANON, session="web2")),  # line 34: another session
        orjson.dumps(doc(44, user=ERASED)),  # line 35: an erased shopper
        b"",  # a blank line is no record
    ]
    return lines_file(tmp_path / "history.jsonl.gz", rows, gz=gz)


def test_import_checks_like_the_collector_and_dead_letters_precisely(client, tmp_path):
    client.hset(KEYS.tombstones, tombstone_digest(ERASED), 1)
    path = history(tmp_path)
    report = import_events(client, [path], opts())
    assert (report.lines, report.imported, report.duplicate, report.erased) == (35, 29, 1, 1)
    assert sum(report.rejected.values()) == 4
    assert report.rejected_lines == {
        next(r for r in report.rejected if r.startswith("$: not JSON")): ["history.jsonl.gz:5"],
        "user: must be a 22-character anonymous shopper id or a customer id of at most 64 "
        "characters matching [A-Za-z0-9][A-Za-z0-9_.:-]*": ["history.jsonl.gz:10"],
        "$: unknown field 'colour'": ["history.jsonl.gz:15"],
        "ts: in the future beyond the allowed clock skew": ["history.jsonl.gz:20"],
    }
    evs = streamed(client)
    assert len(evs) == 29 and len({e.event_id for e in evs}) == 29
    by_id = {e.event_id: e for e in evs}
    assert by_id["e42"].user == CUSTOMER and by_id["e43"].user == ANON  # per session
    assert by_id["i1"].type == "identify" and by_id["i1"].anon == ANON
    assert not any(ERASED in e.user for e in evs)
    dead = [f for _, f in client.xrange(KEYS.dlq)]
    where = [f"history.jsonl.gz:{n}".encode() for n in (5, 10, 15, 20)]
    assert [f[b"where"] for f in dead] == where
    assert dead[0][b"raw"] == b'{"v": 1, "event_id": "broken"'  # the original bytes
    assert all(f[b"source"] == b"import" for f in dead)
    assert client.get(KEYS.link(ANON)) == f"web1|{CUSTOMER}".encode()
    assert client.smembers(KEYS.anons(CUSTOMER)) == {ANON.encode()}


def test_importing_the_same_file_twice_changes_nothing_the_second_time(client, tmp_path):
    path = history(tmp_path)
    first = import_events(client, [path], opts())
    before = state(client)
    second = import_events(client, [path], opts())
    assert state(client) == before
    assert second.imported == 0 and second.already_imported == first.imported == 30


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("after_write", [False, True])
def test_a_rerun_after_a_crash_imports_nothing_twice(client, tmp_path, monkeypatch, after_write):
    rows = [orjson.dumps(doc(i, user=f"cust_{i % 13}")) for i in range(1, 2001)]
    rows[700] = b"not json"
    path = lines_file(tmp_path / "big.jsonl", rows)
    real = imports._Importer.write
    calls = {"n": 0}

    def crashing(self, src, done, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            if after_write:  # the chunk landed; its answer was lost
                real(self, src, done, chunk)
            raise Crash("connection lost")
        return real(self, src, done, chunk)

    monkeypatch.setattr(imports._Importer, "write", crashing)
    with pytest.raises(Crash):
        import_events(client, [path], opts(chunk_lines=300))
    monkeypatch.setattr(imports._Importer, "write", real)
    partial = len(streamed(client))
    assert 0 < partial < 1999
    report = import_events(client, [path], opts(chunk_lines=300))
    evs = streamed(client)
    assert [e.event_id for e in evs] == sorted(f"e{i}" for i in range(1, 2001) if i != 701)
    assert report.imported == 1999 - partial and report.already_imported == partial
    assert client.xlen(KEYS.dlq) == 1


@pytest.mark.timeout(120)
def test_sigkill_mid_import_then_resume(single_redis_url, tmp_path):
    c = redis.Redis.from_url(single_redis_url)
    rows = [orjson.dumps(doc(i, user=f"cust_{i % 97}")) for i in range(1, 120_001)]
    path = lines_file(tmp_path / "huge.jsonl", rows)
    cmd = [*CLI, "import", "events", str(path), "--redis-url", single_redis_url,
           "--partitions", str(PARTS), "--no-progress"]  # fmt: skip
    proc = Process(cmd, name="import", env=dict(os.environ)).start()
    deadline = time.monotonic() + scaled(60)
    while sum(c.xlen(KEYS.stream(p)) for p in range(PARTS)) == 0 and proc.poll() is None:
        assert time.monotonic() < deadline, "the import wrote nothing"
        time.sleep(POLL_S / 5)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout_s=30)
    killed = proc.poll() == -signal.SIGKILL
    proc.close()
    assert main([*cmd[len(CLI) :], "--json"]) == 0
    evs = streamed(c)
    assert len(evs) == 120_000 and len({e.event_id for e in evs}) == 120_000
    assert killed, "the import finished before it could be killed: make the file bigger"
    c.close()


def test_csv_with_a_header_mapping_through_the_cli(single_redis_url, tmp_path, capsys):
    csv = (
        "order_id,customer,sku,ordered_at,price,channel\n"
        "o1,cust_1,SKU-1,2024-03-01T10:00:00Z,9.5,web\n"
        "o2,cust_2,SKU-2,1709287200000,4,store\n"
        "o3,cust_3,SKU-3,yesterday,1,web\n"
    )
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(gzip.compress(csv.encode()))
    maps = ["order_id=event_id", "customer=user", "sku=item", "ordered_at=ts", "channel=-"]
    flags = [x for m in maps for x in ("--map", m)]
    args = ["import", "events", str(path), "--redis-url", single_redis_url, "--partitions",
            str(PARTS), *flags, "--progress", "--json"]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    report = orjson.loads(out)
    assert (report["imported"], report["rejected"]) == (2, 1)
    assert report["rejected_by_reason"] == [{
        "reason": "ts: 'yesterday' is neither epoch milliseconds nor ISO 8601",
        "count": 1, "first_lines": ["orders.csv.gz:4"]}]  # fmt: skip
    assert "orders.csv.gz [####################] 100%" in err
    c = redis.Redis.from_url(single_redis_url)
    evs = streamed(c)
    assert [(e.event_id, e.type, e.user, e.item, e.ts, e.price) for e in evs] == [
        ("o1", "purchase", "cust_1", "SKU-1", 1709287200000, 9.5),
        ("o2", "purchase", "cust_2", "SKU-2", 1709287200000, 4.0),
    ]
    c.close()


def test_an_unmapped_csv_column_stops_before_anything_is_written(
    single_redis_url, tmp_path, capsys
):
    path = tmp_path / "orders.csv"
    path.write_text("event_id,user,colour\no1,cust_1,red\n")
    args = ["import", "events", str(path), "--redis-url", single_redis_url, "--no-progress"]
    assert main(args) == 2
    assert (
        "column 'colour' is no event field; map it with --map colour=FIELD"
        in capsys.readouterr().err
    )
    c = redis.Redis.from_url(single_redis_url)
    assert c.xlen(KEYS.dlq) == 0 and not c.hgetall(KEYS.imports(0))
    c.close()


def test_a_configured_customer_pattern_applies(client, tmp_path):
    path = lines_file(tmp_path / "h.jsonl", [orjson.dumps(doc(1, user="12345")),
                                            orjson.dumps(doc(2, user="cust_9"))])  # fmt: skip
    report = import_events(client, [path], opts(ids=ShopperIds(r"cust_[0-9]+")))
    assert report.imported == 1 and sum(report.rejected.values()) == 1


def test_a_stalled_processor_stops_the_import_resumably(client, tmp_path):
    path = lines_file(tmp_path / "h.jsonl", [orjson.dumps(doc(i)) for i in range(1, 51)])
    with pytest.raises(imports.ImportStalled, match="Run the same import again to resume"):
        import_events(client, [path], opts(max_backlog=10, chunk_lines=20, stall_s=0.0))
    landed = len(streamed(client))
    assert 0 < landed < 50  # it stopped waiting for a processor that never came
    assert import_events(client, [path], opts()).imported == 50 - landed
    assert len(streamed(client)) == 50


def test_progress_bar_text() -> None:
    ticks = iter([0.0, 2.0])
    bar = Progress(None, clock=lambda: next(ticks))
    assert (
        bar.line("f.jsonl", 50, 100, 1000)
        == "f.jsonl [##########..........]  50%  1,000 lines  500/s"
    )


def test_entries_are_msgpack_events() -> None:
    raw = msgpack.packb(doc(1))
    assert isinstance(event.decode(raw), event.Event)
