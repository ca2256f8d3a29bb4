"""``p13n import events FILE...``: years of history straight into the partition streams.

Not through the collector (no browser rate limit, no HTTP), but with its rules: every line is
validated like a collector event (``segmenter.event.validate``, the one shopper-id policy
``segmenter.shoppers``, no time beyond the clock skew), an erased shopper's lines are refused
and stored nowhere, identify lines leave their sign-in link and credit the session's later
lines to the customer (``segmenter.stitching``), and every other bad line goes to the
dead-letter stream with its reason, its original bytes and ``where`` ("file:line").

Exactly once, resumable: each file is known by a digest of its bytes. Per partition, the
entries of a chunk and the file's progress on that partition (``Keys.imports``) are written
by one script (one hash slot, atomic), so a re-run after a crash, or of the same file, skips
exactly the lines that landed; dead letters are written once per file line. Duplicates inside
the file (same event id on the same UTC day, the processor's rule) are counted and left out.

The processor must keep up: before each chunk, when a partition's backlog (entries not yet
applied) is over ``max_backlog``, the import waits for it (the collector's stream trimming
would otherwise drop history not yet applied), and gives up, resumable, after ``stall_s``
without progress.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import redis

from cache_keys import is_shopper_id
from ops.imports.parse import Bad, ParseConfig, Parsed, parse_batch, parsed
from ops.imports.progress import Progress
from ops.imports.records import Source, open_source
from segmenter import event, scripts
from segmenter.event import Event, Rejection
from segmenter.schema import DLQ_MAXLEN, GROUP, Keys, group_backlog, tombstone_digest
from segmenter.shoppers import ShopperIds
from segmenter.stitching import credit, parse_link, stage_link
from segmenter.store import dlq_fields

__all__ = ["ImportOptions", "ImportReport", "ImportStalled", "import_events"]

DAY_MS = 86_400_000
CHUNK_LINES = 5000
# Rejection reasons keep this many line numbers each for the report (all are dead-lettered).
LINES_SHOWN = 10


_USERS_MAX = 1_000_000


class ImportStalled(RuntimeError):
    """The processor applied nothing for too long; the import stopped, resumable."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to read and where to write."""

    keys: Keys
    partitions: int
    ids: ShopperIds = field(default_factory=ShopperIds)
    fmt: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    max_clock_skew_ms: int = 5 * 60_000
    max_backlog: int = 200_000
    stall_s: float = 60.0
    chunk_lines: int = CHUNK_LINES
    # Processes parsing and checking lines (0: in this process). The writer stays one, in
    # file order, so progress and duplicates are decided exactly as without workers.
    workers: int = 0


@dataclass(slots=True)
class ImportReport:
    """What one run did, per outcome; rejected lines by reason with their first line numbers."""

    files: int = 0
    lines: int = 0
    imported: int = 0
    already_imported: int = 0
    duplicate: int = 0
    erased: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_lines: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def reject(self, reason: str, where: str) -> None:
        self.rejected[reason] += 1
        shown = self.rejected_lines.setdefault(reason, [])
        if len(shown) < LINES_SHOWN:
            shown.append(where)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files, "lines": self.lines, "imported": self.imported,
            "already_imported": self.already_imported, "duplicate": self.duplicate,
            "erased": self.erased, "rejected": sum(self.rejected.values()),
            "rejected_by_reason": [
                {"reason": r, "count": n, "first_lines": self.rejected_lines[r]}
                for r, n in self.rejected.most_common()
            ],
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.lines / self.seconds) if self.seconds > 0 else 0,
        }  # fmt: skip

    def text(self) -> str:
        doc = self.to_json()
        out = [
            f"{doc['lines']:,} lines from {doc['files']} file(s) in {doc['seconds']:.1f} s "
            f"({doc['events_per_s']:,}/s): {doc['imported']:,} imported, "
            f"{doc['already_imported']:,} already imported, {doc['duplicate']:,} duplicate, "
            f"{doc['erased']:,} of erased shoppers, {doc['rejected']:,} rejected"
        ]
        for row in doc["rejected_by_reason"]:
            more = " …" if row["count"] > len(row["first_lines"]) else ""
            out.append(
                f"  {row['count']:>8,}  {row['reason']}  ({', '.join(row['first_lines'])}{more})"
            )
        if doc["rejected"]:
            out.append("rejected lines are in the dead-letter stream: p13n dlq list")
        return "\n".join(out)


@dataclass(slots=True)
class _Chunk:
    """One batch's decisions before writing."""

    entries: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    dead: list[tuple[Bad, str]] = field(default_factory=list)
    identifies: list[Event] = field(default_factory=list)


class _Importer:
    def __init__(self, r: redis.Redis, opts: ImportOptions, report: ImportReport,
                 now_ms: Callable[[], int]) -> None:  # fmt: skip
        self.r, self.o, self.report, self.now_ms = r, opts, report, now_ms
        self.k = opts.keys
        self.chunk_script = r.register_script(scripts.IMPORT_CHUNK)
        self.dlq_script = r.register_script(scripts.DLQ_ADD)
        for src in (scripts.IMPORT_CHUNK, scripts.DLQ_ADD):  # every primary of a cluster
            r.script_load(src)
        # Decisions that must be the same on a resumed run: taken on every line, even the
        # ones already imported.
        self.links: dict[str, tuple[str, str] | None] = {}
        self.seen: set[tuple[str, int]] = set()
        self.checked: set[str] = set()
        self.erased: set[str] = set()
        self._backlog_ok_until = 0
        self._failed = False
        self.label = ""

    def ensure_groups(self) -> None:
        """The processor's group on every stream, from the start (no imported entry before
        it is ever skipped)."""
        for p in range(self.o.partitions):
            try:
                self.r.xgroup_create(self.k.stream(p), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def run_file(self, src: Source, progress: Progress, pool: Executor | None) -> None:
        done = self.progress_of(src.digest)
        label = src.path.name
        batches = src.batches(self.o.chunk_lines)
        first = next(batches, None)  # reads the CSV header: a bad one stops here
        cfg = ParseConfig(src.format, src.columns, src.digest, self.o.ids, self.o.partitions,
                          self.now_ms() + self.o.max_clock_skew_ms)  # fmt: skip
        todo = itertools.chain([first] if first else [], batches)
        # One writer thread, in order: Redis applies a chunk while the next one is decided
        # (decisions never depend on a write's answer).
        pending: deque[Future[None]] = deque()
        with ThreadPoolExecutor(1, thread_name_prefix="import-writer") as writer:
            for batch in _in_order(pool, cfg, todo, self.o.workers):
                self.wait_for_processor(progress, label, src)
                chunk = self.decide(batch, done)
                pending.append(writer.submit(self._write_in_order, src, done, chunk))
                while len(pending) > 1 or (pending and pending[0].done()):
                    pending.popleft().result()  # a failed write stops the import here
                self.report.lines += len(batch)
                progress.update(label, src.position, src.size, self.report.lines)
            while pending:
                pending.popleft().result()
        progress.finish(label, src.size, self.report.lines)

    def _write_in_order(self, src: Source, done: list[int], chunk: _Chunk) -> None:
        """``write``, unless an earlier write failed: a later chunk landing after a lost one
        would move the file's progress past lines that never arrived."""
        if self._failed:
            raise ImportStalled("an earlier write failed")
        try:
            self.write(src, done, chunk)
        except BaseException:
            self._failed = True
            raise

    def progress_of(self, digest: str) -> list[int]:
        pipe = self.r.pipeline(transaction=False)
        for p in range(self.o.partitions):
            pipe.hget(self.k.imports(p), digest)
        return [int(v or 0) for v in pipe.execute()]

    # -- decisions ------------------------------------------------------------------------
    def _lookups(self, users: set[str]) -> None:
        """Sign-in links of the anonymous ids and tombstones of every id not seen before in
        this run (a shopper erased while the import runs is dropped by the processor)."""
        new = sorted(users - self.checked)
        if not new:
            return
        anons = [u for u in new if is_shopper_id(u) and u not in self.links]
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.k.tombstones, [tombstone_digest(u) for u in new])
        for anon in anons:
            pipe.get(self.k.link(anon))
        marks, *links = pipe.execute()
        self.erased.update(u for u, m in zip(new, marks, strict=True) if m is not None)
        for anon, raw in zip(anons, links, strict=True):
            self.links[anon] = parse_link(raw)
        if len(self.checked) >= _USERS_MAX:
            self.checked.clear()
        self.checked.update(new)

    def _credited(self, ev: Parsed, link: tuple[str, str] | None) -> Parsed:
        if link is None or ev.type == "identify" or ev.session != link[0]:
            return ev
        decoded = event.decode(ev.entry)
        assert isinstance(decoded, Event)
        return parsed(credit(decoded, link), ev.line, self.o.partitions)

    def decide(self, batch: list[Parsed | Bad], done: list[int]) -> _Chunk:
        users = {u for ev in batch if type(ev) is Parsed for u in (ev.user, ev.anon)}
        self._lookups(users - {""})
        out, erased, seen, links = _Chunk(), self.erased, self.seen, self.links
        name = self.label
        for item in batch:
            if type(item) is Bad:
                where = f"{name}:{item.line}"
                self.report.reject(item.reason, where)
                out.dead.append((item, where))
                continue
            ev = item
            assert type(ev) is Parsed
            if ev.user in erased or ev.anon in erased:
                self.report.erased += 1  # refused, stored nowhere (not even dead-lettered)
                continue
            if ev.type == "identify":
                links[ev.anon] = (ev.session, ev.user)
                decoded = event.decode(ev.entry)
                assert isinstance(decoded, Event)
                out.identifies.append(decoded)
            elif ev.user in links:
                ev = self._credited(ev, links[ev.user])
            if ev.dedupe in seen:
                self.report.duplicate += 1
                continue
            seen.add(ev.dedupe)
            if ev.line <= done[ev.partition]:
                self.report.already_imported += 1
                continue
            out.entries.setdefault(ev.partition, []).append((ev.line, ev.entry))
        return out

    # -- writes ---------------------------------------------------------------------------
    def write(self, src: Source, done: list[int], chunk: _Chunk) -> None:
        """Links and dead letters first (both idempotent), then each partition's entries
        with its progress, atomically."""
        received = self.now_ms()
        if chunk.identifies or chunk.dead:
            pipe = self.r.pipeline(transaction=False)
            for ev in chunk.identifies:
                stage_link(pipe, self.k, ev)
            for bad, where in chunk.dead:
                rej = Rejection(bad.field, bad.reason.removeprefix(f"{bad.field}: "))
                fields = dlq_fields(rej, bad.raw, "import", user=bad.user, received_ms=received,
                                    where=where)  # fmt: skip
                src_id = f"import:{src.digest}:{bad.line}"
                self.dlq_script(keys=[self.k.dlq, self.k.dlq_sources],
                                args=[src_id, DLQ_MAXLEN, *fields], client=pipe)  # fmt: skip
            pipe.execute()
        if not chunk.entries:
            return
        pipe = self.r.pipeline(transaction=False)
        order = sorted(chunk.entries)
        for p in order:
            rows = chunk.entries[p]
            self.chunk_script(
                keys=[self.k.stream(p), self.k.imports(p)],
                args=[
                    src.digest,
                    rows[0][0],
                    rows[-1][0],
                    msgpack.packb([raw for _, raw in rows], use_bin_type=False),
                ],
                client=pipe,
            )
        for p, wrote in zip(order, pipe.execute(), strict=True):
            rows = chunk.entries[p]
            done[p] = rows[-1][0]
            self.report.imported += int(wrote)
            self.report.already_imported += len(rows) - int(wrote)  # a concurrent run's

    def wait_for_processor(self, progress: Progress, label: str, src: Source) -> None:
        """Hold the import while a partition's backlog is over ``max_backlog``."""
        if self.report.lines < self._backlog_ok_until:
            return
        last, since = -1, time.monotonic()
        while True:
            behind = self.backlog()
            if behind <= self.o.max_backlog:
                # Until the worst partition could have filled up, there is no need to look.
                self._backlog_ok_until = self.report.lines + self.o.max_backlog - behind
                return
            if behind != last:
                last, since = behind, time.monotonic()
            elif time.monotonic() - since > self.o.stall_s:
                raise ImportStalled(
                    f"the processor applied nothing for {self.o.stall_s:.0f} s with {behind:,} "
                    "entries behind on one partition: is `p13n segmenter run` running? "
                    "Run the same import again to resume."
                )
            progress.update(
                label, src.position, src.size, self.report.lines, "waiting for the processor"
            )
            time.sleep(0.5)

    def backlog(self) -> int:
        """The largest backlog (entries not yet applied) of any partition."""
        pipe = self.r.pipeline(transaction=False)
        for p in range(self.o.partitions):
            pipe.xinfo_groups(self.k.stream(p))
        return max(group_backlog(g)["behind"] for g in pipe.execute())


def _in_order(
    pool: Executor | None, cfg: ParseConfig, batches: Iterator[list[tuple[int, bytes]]],
    workers: int,
) -> Iterator[list[Parsed | Bad]]:  # fmt: skip
    """Parsed batches in file order; at most ``2 x workers`` in flight (bounded memory)."""
    if pool is None:
        for batch in batches:
            yield parse_batch(cfg, batch)
        return
    window: deque[Future[list[Parsed | Bad]]] = deque()
    for batch in batches:
        window.append(pool.submit(parse_batch, cfg, batch))
        if len(window) >= 2 * workers:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def import_events(
    r: redis.Redis,
    paths: Iterable[Path],
    opts: ImportOptions,
    *,
    progress: Progress | None = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> ImportReport:
    """Import every file in turn; the report of the run. ValueError for an unreadable
    file or header (before that file's first write), ``ImportStalled`` for a stall."""
    report = ImportReport()
    started = time.perf_counter()
    imp = _Importer(r, opts, report, now_ms)
    imp.ensure_groups()
    bar = progress or Progress(None)
    pool = ProcessPoolExecutor(opts.workers) if opts.workers > 0 else None
    try:
        for path in paths:
            src = open_source(path, opts.fmt, opts.mapping)
            imp.label = src.path.name
            try:
                imp.run_file(src, bar, pool)
            finally:
                src.close()
            report.files += 1
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    report.seconds = time.perf_counter() - started
    return report
