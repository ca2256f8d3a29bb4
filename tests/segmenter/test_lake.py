"""The Parquet lake: written from the archive by a real processor run, read in place by
``p13n sql``; kept in step with appends, erasures and retention."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import orjson

from ops.shop import stream
from segmenter import event, lake
from segmenter.aggregates import Entry
from segmenter.archive import ArchiveWriter
from segmenter.schema import partition_of
from tests.support import segmenter as support

T_HOUR = 3_600_000


def _count(root: Path, where: str = "true") -> int:
    files = list((root / "events").glob("dt=*/hour=*/*.parquet"))
    if not files:
        return 0
    ((n,),) = duckdb.sql(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]}, "
                         f"union_by_name = true) WHERE {where}").fetchall()  # fmt: skip
    return int(n)


def _entries(n: int, seed: int = 5, start: int = 0) -> list[Entry]:
    evs = stream.events(n, seed=seed)
    return [Entry(f"{e.ts}-{start + i}", b"", e) for i, e in enumerate(evs)]


def test_sync_writes_changed_hours_once_each_and_again_after_appends(tmp_path) -> None:
    writer = ArchiveWriter(tmp_path)
    first = _entries(500)
    writer.append(0, first)
    writer.append(0, first[:50])  # a redelivered batch: written twice, read once
    assert lake.sync(tmp_path) >= 1
    assert lake.sync(tmp_path) == 0  # nothing changed
    root = lake.lake_root(tmp_path)
    assert _count(root) == 500
    later = [Entry(f"{e.key[0]}-{10_000 + i}", b"", e.event) for i, e in enumerate(first[-20:])]
    writer.append(1, later)
    assert lake.sync(tmp_path) >= 1
    assert _count(root) == 520
    assert _count(root, "partition = 1") == 20


def test_columns_follow_the_registry_and_old_files_read_alongside(tmp_path) -> None:
    (e0, e1) = _entries(2)
    assert e0.event is not None and e1.event is not None
    writer = ArchiveWriter(tmp_path)
    writer.append(0, [e0])
    lake.sync(tmp_path)
    late = Entry(f"{e0.key[0] + 2 * T_HOUR}-1", b"", replace(e1.event, position=4))
    writer.append(0, [late])
    lake.sync(tmp_path)
    root = lake.lake_root(tmp_path)
    assert _count(root, "position = 4 AND v = 2") == 1
    assert _count(root, "position IS NULL AND v = 1") == 1
    assert set(lake.COLUMNS) >= {"v", "event_id", "type", "user", "ts", "position", "stream_id"}
    assert "traceparent" not in lake.COLUMNS


def test_erase_and_retention(tmp_path) -> None:
    entries = _entries(300)
    ArchiveWriter(tmp_path).append(0, entries)
    lake.sync(tmp_path)
    root = lake.lake_root(tmp_path)
    user = entries[0].event.user if entries[0].event else ""
    mine = _count(root, f"user = '{user}'")
    assert mine > 0 and lake.erase(root, user) == mine
    assert _count(root, f"user = '{user}'") == 0 and _count(root) == 300 - mine
    assert lake.sync(tmp_path) == 0  # the erased file stays in step with its hour
    newest = max(e.key[0] for e in entries)
    assert lake.prune(root, 1, newest + 2 * 86_400_000) >= 1
    assert _count(root) == 0


def _p13n(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *argv], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def _lake_of_a_processor_run(url: str, client: Any, archive: Path, entries: int) -> str:
    """Run a processor (lake every second) until the lake holds ``entries`` events; returns
    the memory map (/proc/PID/maps) of the processor as it was then."""
    proc = support.spawn(url, archive, P13N_LAKE_INTERVAL_S="1",
                         P13N_LAKE_RETENTION_DAYS=str(support.RETENTION_DAYS))  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        root = lake.lake_root(archive)
        while not (support.drained(client) and _count(root) == entries):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the processor did not write the lake in time"
            time.sleep(0.1)
        return Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        support.stop(proc)


def test_p13n_sql_reads_a_lake_written_by_a_real_processor_run(single_redis_url, tmp_path):
    entries = support.valid_entries(1200)
    v2 = [
        replace(e, event_id=f"v2-{i}", position=i % 7)
        for i, e in enumerate(stream.events(60, seed=11, shop=stream.Shop(items=300, shoppers=150)))
    ]
    start = max(int(sid.partition("-")[0]) for sid, _, _ in entries)
    entries += [(f"{start + 1}-{i}", partition_of(e.user, support.PARTITIONS), event.encode(e))
                for i, e in enumerate(v2)]  # fmt: skip
    client = support.connect_sync(single_redis_url)
    support.load(client, entries)
    archive = tmp_path / "arc"
    _lake_of_a_processor_run(single_redis_url, client, archive, len(entries))
    snap = _p13n("lake", "snapshot", "--redis-url", single_redis_url, "--archive-dir", str(archive))
    assert snap.returncode == 0 and "shoppers=" in snap.stdout, snap.stderr
    got = _p13n("sql", "SELECT count(*) AS n, count(position) AS positioned, "
                "count(DISTINCT user) FILTER (user IN (SELECT user FROM shoppers)) AS known "
                "FROM events", "--format", "json", "--archive-dir", str(archive))  # fmt: skip
    assert got.returncode == 0, got.stderr
    row = orjson.loads(got.stdout)
    evs = support.valid_events(entries)
    once = {(e.event_id, e.ts // 86_400_000) for e in evs}  # client retries count once
    assert len(once) < len(entries)
    assert row == {"n": len(once), "positioned": 60, "known": len({e.user for e in evs})}
    top = _p13n("sql", "--query", "top-sellers", "--format", "json", "--archive-dir", str(archive))
    rows = [orjson.loads(line) for line in top.stdout.splitlines()]
    assert top.returncode == 0 and rows and all(r["segment"] != "(none)" for r in rows)
    client.close()


def test_the_processor_writes_the_lake_without_loading_duckdb_itself(single_redis_url, tmp_path):
    """DuckDB (~60 MB resident, kept after the first sync) runs in a child per sync."""
    entries = support.valid_entries(300)
    client = support.connect_sync(single_redis_url)
    support.load(client, entries)
    maps = _lake_of_a_processor_run(single_redis_url, client, tmp_path / "arc", len(entries))
    client.close()
    assert "duckdb" not in maps


def test_p13n_sql_usage_errors(tmp_path) -> None:
    assert _p13n("sql", "SELECT 1", "--archive-dir", str(tmp_path / "nope")).returncode == 2
    bad = _p13n("sql", "SELEC 1", "--archive-dir", str(tmp_path))
    assert bad.returncode == 2 and "syntax error" in bad.stderr
    empty = _p13n("sql", "SELECT count(*) AS n FROM events", "--archive-dir", str(tmp_path))
    assert empty.returncode == 0 and "(1 row)" in empty.stdout
