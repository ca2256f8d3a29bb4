"""The event lake: the archive again as Parquet, hour-partitioned, for DuckDB and warehouses.

Layout (inside the archive directory; ``dt``/``hour`` of the arrival time, UTC)::

    <archive>/lake/events/dt=2024-05-01/hour=13/events.parquet
    <archive>/lake/snapshots/taken=20240501T130000Z/<table>.parquet   (``segmenter.snapshot``)

One Parquet file per archive hour holds every partition's events of that hour, each once, in
arrival order (partition, stream id), with the columns of ``COLUMNS``: the current event
version's fields plus where and when the event arrived. The file layout is the contract: any
engine that reads hive-partitioned Parquet loads it as it is.

``sync`` (re)writes the file of every archive hour whose JSON Lines changed since (an open
hour is rewritten until it closes, an erased shopper's hour again), atomically; the processor
runs it every ``P13N_LAKE_INTERVAL_S``. ``prune`` applies the lake's own retention
(``P13N_LAKE_RETENTION_DAYS``, longer than the archive's); ``erase`` removes a shopper.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import duckdb
import orjson

from segmenter.archive import archive_hours, hour_start_ms, read_partition
from segmenter.event import USER_RE, Event
from segmenter.registry import CURRENT, VERSIONS

__all__ = [
    "COLUMNS",
    "LakeError",
    "erase",
    "events_glob",
    "has_events",
    "lake_root",
    "main",
    "prune",
    "sync",
    "write_table",
]

_HOUR_MS = 3_600_000
_PARTITION_RE = re.compile(r"p(\d+)-")
_SQL_TYPES = {"text": "VARCHAR", "enum": "VARCHAR", "int": "BIGINT", "number": "DOUBLE",
              "bool": "BOOLEAN"}  # fmt: skip
# Operational, not analytical: trace ids stay out of the lake.
_LEFT_OUT = frozenset({"traceparent"})
# Column -> DuckDB type. Fields a later version adds become new columns; readers use
# ``union_by_name`` so older files simply show NULL there.
COLUMNS: dict[str, str] = {
    "v": "INTEGER",
    **{n: _SQL_TYPES[f.kind] for n, f in VERSIONS[CURRENT].fields.items() if n not in _LEFT_OUT},
    "partition": "INTEGER",
    "stream_id": "VARCHAR",  # "<arrival ms>-<seq>": the order within a partition
    "received_ms": "BIGINT",  # arrival at the collector (the stream id's time)
    "stream_seq": "BIGINT",
}


class LakeError(RuntimeError):
    """DuckDB could not read or write a lake file (its error translated once, here)."""


# Documents omit fields at their default (``event.to_doc``); the lake spells the non-text
# ones out (qty 1, price 0, bot false) so SQL sums need no coalesce. Absent text is NULL.
_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(Event)
    if f.name in COLUMNS and f.default not in ("", None, dataclasses.MISSING)
}


def lake_root(archive_root: Path) -> Path:
    """Where the lake of an archive lives."""
    return archive_root / "lake"


def has_events(root: Path) -> bool:
    """Whether the lake holds any event file yet (DuckDB refuses a glob matching nothing)."""
    return any((root / "events").glob("dt=*/hour=*/*.parquet"))


def events_glob(root: Path) -> str:
    """The glob DuckDB reads the events with."""
    return str(root / "events" / "dt=*" / "hour=*" / "*.parquet")


def _target(root: Path, hour_dir: Path) -> Path:
    return root / "events" / hour_dir.parent.name / hour_dir.name / "events.parquet"


def _hour_docs(archive_root: Path, hour_dir: Path) -> Iterator[dict[str, object]]:
    start = hour_start_ms(hour_dir)
    parts = sorted(
        {int(m.group(1)) for f in hour_dir.iterdir() if (m := _PARTITION_RE.match(f.name))}
    )
    for p in parts:
        for doc in read_partition(archive_root, p, start, start + _HOUR_MS):
            row = {k: doc.get(k, _DEFAULTS.get(k)) for k in COLUMNS}
            row["stream_seq"] = int(str(doc["stream_id"]).partition("-")[2] or 0)
            yield row


def write_table(
    rows: Iterable[Mapping[str, object]], target: Path, columns: Mapping[str, str] = COLUMNS
) -> int:
    """Rows (``columns``: name -> DuckDB type) -> one Parquet file, replaced atomically;
    returns the row count."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "rows.jsonl"
        n = 0
        with src.open("wb") as fh:
            for row in rows:
                fh.write(orjson.dumps(row) + b"\n")
                n += 1
        out = Path(tmp) / "out.parquet"
        spec = "{" + ", ".join(f"'{k}': '{t}'" for k, t in columns.items()) + "}"
        with duckdb.connect() as db, _translated():
            db.execute(
                f"COPY (SELECT * FROM read_json('{src}', format='newline_delimited', "  # noqa: S608
                f"columns={spec})) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
            )
        os.replace(out, target)
    return n


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except duckdb.Error as exc:
        raise LakeError(f"{type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[bool]:
    """One writer per lake at a time (several processors share an archive): True if ours."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def sync(archive_root: Path, root: Path | None = None) -> int:
    """Write the Parquet file of every archive hour that changed; returns how many."""
    root = lake_root(archive_root) if root is None else root
    written = 0
    with _exclusive(root) as mine:
        if not mine:
            return 0
        for hour_dir in archive_hours(archive_root):
            files = list(hour_dir.glob("*.jsonl.gz"))
            if not files:
                continue
            changed = max(f.stat().st_mtime_ns for f in files)  # before reading: see appends
            target = _target(root, hour_dir)
            if target.exists() and target.stat().st_mtime_ns >= changed:
                continue
            write_table(_hour_docs(archive_root, hour_dir), target)
            os.utime(target, ns=(changed, changed))
            written += 1
    return written


def erase(root: Path, user: str) -> int:
    """Rewrite the lake's files without shopper ``user``; returns the rows removed."""
    if not USER_RE.fullmatch(user):  # inlined in SQL below: only a valid shopper id
        raise ValueError(f"not a shopper id: {user[:64]!r}")
    removed = 0
    if not (root / "events").is_dir():
        return 0
    with duckdb.connect() as db, _translated():
        for path in sorted((root / "events").glob("dt=*/hour=*/*.parquet")):
            mtime = path.stat().st_mtime_ns
            (n,) = db.execute(
                "SELECT count(*) FROM read_parquet(?) WHERE user = ?", [str(path), user]
            ).fetchone() or (0,)
            if not n:
                continue
            tmp = path.with_suffix(".tmp")
            db.execute(
                f"COPY (SELECT * FROM read_parquet('{path}') WHERE user IS DISTINCT FROM "  # noqa: S608
                f"'{user}') TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)"
            )
            os.replace(tmp, path)
            os.utime(path, ns=(mtime, mtime))  # still in step with its archive hour
            removed += int(n)
    return removed


def prune(root: Path, retention_days: int, now_ms: int | None = None) -> int:
    """Delete lake hours older than the retention; returns how many went."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now - retention_days * 86_400_000
    gone = 0
    for hour in sorted((root / "events").glob("dt=*/hour=*")):
        if hour_start_ms(hour) + _HOUR_MS <= cutoff:
            shutil.rmtree(hour)
            gone += 1
    return gone


def main(argv: list[str]) -> int:
    """``python -m segmenter.lake ARCHIVE_DIR RETENTION_DAYS NOW_MS``: sync, then prune (the
    processor runs this as a child, so DuckDB never lives in the processor)."""
    archive, days, now = Path(argv[0]), int(argv[1]), int(argv[2])
    try:
        sync(archive)
        prune(lake_root(archive), days, now)
    except (OSError, LakeError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
