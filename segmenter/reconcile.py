"""The batch path: recompute the windowed aggregates from the lake and compare with the stream's.

The same pure operator as the processor (``aggregates.apply``) folds each partition's lake
events in arrival order, from the start of the lake up to the partition's committed offset,
so the batch sees exactly what the stream saw: duplicates, late events and sessions alike.
Every aggregate is an integer sum, so by design the two agree exactly; a difference means a
bug, a lost or doubled write, or a manual edit::

    popularity      per (time bucket, item), buckets in [from, to) still kept by the store
    covisitation    per (item, neighbour), items viewed in [from, to) (capped sets: members
                    the store holds; the cap decides which neighbours it keeps)
    experiments     per (experiment, counter), experiments exposed in [from, to)

Comparing experiment counts and co-visitation needs the lake to reach back to their start:
the lake's retention is longer than the store's TTLs for that reason.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from segmenter import aggregates, event
from segmenter.aggregates import Entry, PartitionParams, PartitionState, parse_id
from segmenter.lake import LakeError, events_glob, has_events
from segmenter.registry import VERSIONS
from segmenter.schema import COVIS_MAX, POPULARITY_BUCKET_S, POPULARITY_BUCKETS

__all__ = ["AGGREGATES", "Aggregates", "Difference", "Window", "compare", "fold", "lake_entries"]

AGGREGATES = ("popularity", "covisitation", "experiments")
_CHUNK = 20_000


@dataclass(slots=True)
class Aggregates:
    """One partition's aggregates: key -> member -> integer value, per aggregate."""

    popularity: dict[str, Counter[str]] = field(default_factory=dict)  # bucket -> item
    covisitation: dict[str, Counter[str]] = field(default_factory=dict)  # item -> neighbour
    experiments: dict[str, Counter[str]] = field(default_factory=dict)  # key -> "x:<variant>"

    def table(self, name: str) -> dict[str, Counter[str]]:
        return getattr(self, name)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Window:
    """Event time [from, to) in ms, and what of it a partition's batch touched."""

    from_ms: int
    to_ms: int

    def has(self, ts: int) -> bool:
        return self.from_ms <= ts < self.to_ms


@dataclass(frozen=True, slots=True)
class Difference:
    """One value the stream and the batch disagree on."""

    aggregate: str
    partition: int
    key: str
    member: str
    stream: int
    batch: int

    def doc(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate, "partition": self.partition, "key": self.key,
                "member": self.member, "stream": self.stream, "batch": self.batch}  # fmt: skip


def lake_entries(lake: Path, partition: int, upto: str) -> Iterator[Entry]:
    """A partition's lake events in arrival order, up to stream id ``upto`` included."""
    if not has_events(lake):
        return
    top = parse_id(upto)
    try:
        with duckdb.connect() as db:
            cur = db.execute(
                "SELECT * FROM read_parquet(?, union_by_name = true) WHERE partition = ? AND "
                "(received_ms < ? OR (received_ms = ? AND stream_seq <= ?)) "
                "ORDER BY received_ms, stream_seq",
                [events_glob(lake), partition, top[0], top[0], top[1]],
            )
            names = [d[0] for d in cur.description or []]
            while rows := cur.fetchmany(5000):
                for row in rows:
                    doc = dict(zip(names, row, strict=True))
                    yield _entry(doc)
    except duckdb.Error as exc:
        raise LakeError(f"{type(exc).__name__}: {exc}") from exc


def _entry(row: dict[str, Any]) -> Entry:
    fields = VERSIONS[row["v"]].names
    doc = {k: v for k, v in row.items() if k in fields and v is not None}
    ev = event.validate(doc)
    if not isinstance(ev, event.Event):  # the lake holds valid events only
        raise LakeError(f"lake row {row.get('stream_id')}: {ev.reason}")
    return Entry(str(row["stream_id"]), b"", ev)


def _merge(into: dict[str, Counter[str]], key: Any, counts: Any) -> None:
    into.setdefault(str(key), Counter()).update(counts)


def fold(
    entries: Iterable[Entry], params: PartitionParams, window: Window
) -> tuple[Aggregates, set[str], set[str]]:
    """The batch aggregates, the items and the experiments the window touched."""
    agg = Aggregates()
    items: set[str] = set()
    experiments: set[str] = set()
    st = PartitionState()
    it = iter(entries)
    while chunk := list(itertools.islice(it, _CHUNK)):
        st, fx = aggregates.apply(st, chunk, frozenset(), params)
        for bucket, counts in fx.pop.items():
            _merge(agg.popularity, bucket, counts)
        for item, neighbours in fx.covis.items():
            _merge(agg.covisitation, item, neighbours)
        for key, counts in fx.exp.items():
            _merge(agg.experiments, key, counts)
        for e in fx.accepted:
            ev = e.event
            if ev is not None and window.has(ev.ts):
                if ev.item:
                    items.add(ev.item)
                if ev.type == "exposure":
                    experiments.add(ev.experiment)
    return agg, items, experiments


def _differ(stream: int, batch: int, tolerance: float) -> bool:
    return abs(stream - batch) > tolerance * max(abs(stream), abs(batch))


def _table(
    name: str, p: int, stream: dict[str, Counter[str]], batch: dict[str, Counter[str]],
    *, keys: Iterable[str], tolerance: float,
) -> Iterator[Difference]:  # fmt: skip
    for key in sorted(keys):
        s, b = stream.get(key, Counter()), batch.get(key, Counter())
        capped = name == "covisitation" and len(s) >= COVIS_MAX
        members = set(s) if capped else set(s) | set(b)
        for m in sorted(members):
            if _differ(s[m], b[m], tolerance):
                yield Difference(name, p, key, m, s[m], b[m])


def compare(
    p: int, stream: Aggregates, batch: Aggregates, *, touched: tuple[set[str], set[str]],
    window: Window, max_ts: int, tolerance: float = 0.0,
) -> tuple[dict[str, int], list[Difference]]:  # fmt: skip
    """(values compared per aggregate, differences beyond ``tolerance``, relative)."""
    bucket_ms = POPULARITY_BUCKET_S * 1000
    kept = max_ts // bucket_ms - POPULARITY_BUCKETS  # older buckets have expired by design
    buckets = {
        k for k in set(stream.popularity) | set(batch.popularity)
        if int(k) >= kept and window.has(int(k) * bucket_ms)
    }  # fmt: skip
    items, experiments = touched
    chosen = {"popularity": buckets, "covisitation": items, "experiments": experiments}
    compared: dict[str, int] = {}
    diffs: list[Difference] = []
    for name in AGGREGATES:
        s, b = stream.table(name), batch.table(name)
        keys = chosen[name] & (set(s) | set(b))
        compared[name] = sum(len(set(s.get(k, ())) | set(b.get(k, ()))) for k in keys)
        diffs.extend(_table(name, p, s, b, keys=keys, tolerance=tolerance))
    return compared, diffs
