"""Snapshots of the online store into the lake, so SQL joins history with current state.

    <archive>/lake/snapshots/taken=20240501T130000Z/popularity.parquet
                                                   /experiment_counts.parquet
                                                   /catalog.parquet
                                                   /shoppers.parquet

``p13n sql`` names the newest snapshot's tables as views (``popularity``, ``shoppers``…).
The readers of the partition aggregates here are also what ``ops.reconcile`` compares with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import redis.asyncio as aioredis

from segmenter.lake import events_glob, has_events, write_table
from segmenter.schema import POPULARITY_BUCKET_S, Keys, shopper_tag

__all__ = ["TABLES", "experiment_counts", "popularity", "snapshot", "snapshots_dir"]

# Table -> column -> DuckDB type: the documented snapshot schema (docs/LAKE.md).
TABLES: dict[str, dict[str, str]] = {
    "popularity": {"partition": "INTEGER", "bucket": "BIGINT", "bucket_start_ms": "BIGINT",
                   "item": "VARCHAR", "score": "BIGINT"},
    "experiment_counts": {"partition": "INTEGER", "experiment": "VARCHAR", "metric": "VARCHAR",
                          "variant": "VARCHAR", "value": "BIGINT"},
    "catalog": {"sku": "VARCHAR", "category": "VARCHAR", "price": "DOUBLE", "stock": "BIGINT",
                "durable": "BOOLEAN"},
    "shoppers": {"user": "VARCHAR", "segment": "VARCHAR", "events": "BIGINT",
                 "orders": "BIGINT", "first_ms": "BIGINT", "last_ms": "BIGINT"},
}  # fmt: skip
# Experiment-count field prefixes (segmenter.schema): exposed, converted, orders, revenue.
METRICS = {"x": "exposed", "c": "converted", "o": "orders", "r": "revenue_cents"}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def snapshots_dir(lake: Path) -> Path:
    return lake / "snapshots"


async def _keys(r: aioredis.Redis, pattern: str) -> list[str]:
    return sorted([_text(k) async for k in r.scan_iter(match=pattern, count=1000)])


async def popularity(r: aioredis.Redis, keys: Keys, partition: int) -> dict[int, dict[str, int]]:
    """The partition's popularity: bucket -> item -> integer score."""
    out: dict[int, dict[str, int]] = {}
    prefix = keys.popularity(partition, 0)[:-1]
    for key in await _keys(r, prefix + "*"):
        rows: list[Any] = await r.zrange(key, 0, -1, withscores=True)
        out[int(key.removeprefix(prefix))] = {_text(m): int(s) for m, s in rows}
    return out


async def experiment_counts(
    r: aioredis.Redis, keys: Keys, partition: int
) -> dict[str, dict[str, int]]:
    """The partition's experiment counts: experiment -> field (``x:<variant>``…) -> value."""
    prefix = keys.experiment_counts(partition, "")
    out: dict[str, dict[str, int]] = {}
    for key in await _keys(r, prefix + "*"):
        fields = await r.hgetall(key)
        out[key.removeprefix(prefix)] = {_text(f): int(v) for f, v in fields.items()}
    return out


def _lake_users(lake: Path) -> dict[str, str]:
    """Key form (``shopper_tag``) -> shopper id, for every shopper in the event lake."""
    if not has_events(lake):
        return {}
    with duckdb.connect() as db:
        found = db.execute(
            "SELECT DISTINCT user FROM read_parquet(?, union_by_name = true)", [events_glob(lake)]
        ).fetchall()
    return {shopper_tag(u): u for (u,) in found if u}


async def _shoppers(r: aioredis.Redis, keys: Keys, lake: Path) -> list[dict[str, Any]]:
    rows = []
    # A customer id is in its keys only as a digest: the lake's events name it, so the row
    # gets the id the events use (SQL joins on it); a shopper not in the lake keeps its key
    # form.
    ids = await asyncio.to_thread(_lake_users, lake)
    # The key holds the shopper's hash-tag form (``shopper_tag``): an anonymous id as is, a
    # customer id only as "c.<digest>" (never the shop's own id): that is the user column.
    sample = "A" * 22  # an anonymous-shaped id, kept as is in the key
    head, tail = keys.shopper(sample).split(sample)
    names = ("seg", "events", "orders", "first_ms", "last_ms")
    for key in await _keys(r, f"{head}*{tail}"):
        seg, events, orders, first, last = await r.hmget(key, names)
        num = [
            int(float(_text(x))) if x is not None else None for x in (events, orders, first, last)
        ]
        tag = key.removeprefix(head).removesuffix(tail)
        user = ids.get(tag, tag)
        rows.append({"user": user, "segment": _text(seg) if seg else None, "events": num[0],
                     "orders": num[1], "first_ms": num[2], "last_ms": num[3]})  # fmt: skip
    return rows


def _pop_rows(p: int, pop: dict[int, dict[str, int]]) -> Iterator[dict[str, Any]]:
    for bucket, items in pop.items():
        for item, score in items.items():
            yield {"partition": p, "bucket": bucket, "item": item, "score": score,
                   "bucket_start_ms": bucket * POPULARITY_BUCKET_S * 1000}  # fmt: skip


def _exp_rows(p: int, counts: dict[str, dict[str, int]]) -> Iterator[dict[str, Any]]:
    for key, fields in counts.items():
        for name, value in fields.items():
            metric, _, variant = name.partition(":")
            yield {"partition": p, "experiment": key, "metric": METRICS.get(metric, metric),
                   "variant": variant, "value": value}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    path: Path
    rows: dict[str, int]

    def line(self) -> str:
        counts = " ".join(f"{t}={n}" for t, n in self.rows.items())
        return f"snapshot {self.path.name}: {counts}"


async def snapshot(
    r: aioredis.Redis, keys: Keys, lake: Path, *, partitions: int, now_ms: int
) -> SnapshotReport:
    """Export the online store's aggregates, catalog and shopper segments; returns counts."""
    taken = datetime.fromtimestamp(now_ms / 1000, UTC)
    target = snapshots_dir(lake) / f"taken={taken:%Y%m%dT%H%M%SZ}"
    pop: list[dict[str, Any]] = []
    exp: list[dict[str, Any]] = []
    for p in range(partitions):
        pop.extend(_pop_rows(p, await popularity(r, keys, p)))
        exp.extend(_exp_rows(p, await experiment_counts(r, keys, p)))
    catalog = []
    for sku, raw in (await r.hgetall(keys.catalog)).items():
        doc = orjson.loads(raw)
        catalog.append(
            {"sku": _text(sku), **{k: doc.get(k) for k in TABLES["catalog"] if k != "sku"}}
        )
    tables = {"popularity": pop, "experiment_counts": exp, "catalog": catalog,
              "shoppers": await _shoppers(r, keys, lake)}  # fmt: skip
    rows = {name: write_table(data, target / f"{name}.parquet", TABLES[name])
            for name, data in tables.items()}  # fmt: skip
    return SnapshotReport(target, rows)
