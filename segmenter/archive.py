"""Cold storage of every valid event: append-only, hour-partitioned, gzip JSON Lines.

Layout (``dt`` and ``hour`` of the arrival time, i.e. the stream id's milliseconds, UTC)::

    <dir>/dt=2024-05-01/hour=13/p3-<first stream id>-<writer run>.jsonl.gz

Each line is the event's v1 document plus ``stream_id``, ``partition`` and ``received_ms``,
so DuckDB, pandas or ``zcat | jq`` read it directly. Every batch is one gzip member, appended
and flushed before the batch commits; a process that dies mid-write leaves at most a truncated
last member, which readers skip (the batch is redelivered and written again). Readers merge a
partition's files by stream id and drop repeats, which restores the partition's arrival order.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import heapq
import os
import re
import secrets
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from segmenter.aggregates import Entry, parse_id
from segmenter.event import to_doc

__all__ = [
    "ArchiveWriter",
    "archive_hours",
    "hour_start_ms",
    "prune",
    "read_partition",
    "rewrite_without",
]

_FILE_RE = re.compile(r"p(\d+)-(\d+)-(\d+)-([0-9a-f]+)\.jsonl\.gz")
_HOUR_MS = 3_600_000


def _hour_dir(root: Path, ms: int) -> Path:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return root / f"dt={t:%Y-%m-%d}" / f"hour={t:%H}"


@contextlib.contextmanager
def _locked(path: Path, mode: str) -> Iterator[Any]:
    """Open ``path`` under an exclusive flock, reopening if it was replaced meanwhile."""
    while True:
        fh = open(path, mode)  # noqa: SIM115 - closed below
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()
    try:
        yield fh
    finally:
        fh.close()


@dataclass
class ArchiveWriter:
    """Appends a partition's batches; one file per (hour, writer run)."""

    root: Path
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    _files: dict[tuple[int, int], Path] = field(default_factory=dict)

    def append(self, partition: int, entries: Iterable[Entry]) -> int:
        """Write the batch's valid entries; returns how many were written."""
        groups: dict[int, list[bytes]] = {}
        for e in entries:
            assert e.event is not None
            ms = e.key[0]
            doc = to_doc(e.event)  # a new dict: completed in place
            doc["stream_id"], doc["partition"], doc["received_ms"] = e.stream_id, partition, ms
            hour = ms // _HOUR_MS
            lines = groups.get(hour)
            if lines is None:
                lines = groups[hour] = []
            lines.append(orjson.dumps(doc))
            if (partition, hour) not in self._files:
                d = _hour_dir(self.root, ms)
                d.mkdir(parents=True, exist_ok=True)
                name = f"p{partition}-{e.stream_id}-{self.run}.jsonl.gz"
                self._files[(partition, ms // _HOUR_MS)] = d / name
        for hour, lines in groups.items():
            path = self._files[(partition, hour)]
            path.parent.mkdir(parents=True, exist_ok=True)  # retention may have removed it
            path.touch()
            with _locked(path, "ab") as fh:
                fh.write(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1, mtime=0))
                fh.flush()
        return sum(len(v) for v in groups.values())


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """The documents of one file; a truncated trailing member (a crash) ends it quietly."""
    with contextlib.suppress(EOFError, gzip.BadGzipFile, zlib.error), gzip.open(path) as fh:
        for line in fh:
            if line.endswith(b"\n"):
                yield orjson.loads(line)


def archive_hours(root: Path) -> list[Path]:
    """Hour directories, oldest first."""
    return sorted(root.glob("dt=*/hour=*"))


def hour_start_ms(hour_dir: Path) -> int:
    day = hour_dir.parent.name.removeprefix("dt=")
    t = datetime.strptime(f"{day} {hour_dir.name.removeprefix('hour=')}", "%Y-%m-%d %H")
    return int(t.replace(tzinfo=UTC).timestamp() * 1000)


def read_partition(
    root: Path, partition: int, from_ms: int = 0, to_ms: int = 2**62
) -> Iterator[dict[str, Any]]:
    """A partition's archived events in arrival order, each once, arrival in [from, to).

    Raises ``FileNotFoundError`` when ``root`` is not a directory (a typo, not an empty
    archive)."""
    if not root.is_dir():
        raise FileNotFoundError(f"archive directory {root} does not exist")
    last = (-1, -1)
    for hour in archive_hours(root):
        start = hour_start_ms(hour)
        if start + _HOUR_MS <= from_ms or start >= to_ms:
            continue
        files = [f for f in hour.glob(f"p{partition}-*.jsonl.gz") if _FILE_RE.fullmatch(f.name)]
        streams = [_lines(f) for f in sorted(files)]
        for doc in heapq.merge(*streams, key=lambda d: parse_id(d["stream_id"])):
            key = parse_id(doc["stream_id"])
            if key <= last or not from_ms <= key[0] < to_ms:
                continue
            last = key
            yield doc


def rewrite_without(root: Path, partition: int, user: str) -> int:
    """Erase one shopper from a partition's files (atomic replace): its events and the
    sign-ins naming it (an identify's ``anon``); returns lines removed."""
    removed = 0
    for path in sorted(root.glob(f"dt=*/hour=*/p{partition}-*.jsonl.gz")):
        with _locked(path, "rb"):
            docs = list(_lines(path))
            keep = [d for d in docs if d.get("user") != user and d.get("anon") != user]
            if len(keep) == len(docs):
                continue
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(gzip.compress(b"".join(orjson.dumps(d) + b"\n" for d in keep), 1))
            os.replace(tmp, path)
            removed += len(docs) - len(keep)
    return removed


def prune(root: Path, retention_days: int, now_ms: int | None = None) -> int:
    """Delete hour directories older than the retention; returns how many went."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now - retention_days * 86_400_000
    gone = 0
    for hour in archive_hours(root):
        if hour_start_ms(hour) + _HOUR_MS <= cutoff:
            shutil.rmtree(hour)
            gone += 1
    return gone
