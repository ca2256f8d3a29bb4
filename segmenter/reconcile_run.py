"""One reconciliation run against Redis: consistent reads, the report, audited repairs.

A partition's aggregates and its offset are read in one MULTI (one hash slot), and only when
the offset did not move while their keys were listed; a partition that keeps moving is
reported as skipped. A repair writes the batch values in one script that first checks the
offset is still the one compared, after an audit entry naming every value it changes.
The last report is kept at ``Keys.reconcile_report`` for the console's pipeline page.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import orjson
import redis.asyncio as aioredis

from segmenter import lake
from segmenter.aggregates import PartitionParams
from segmenter.reconcile import AGGREGATES, Aggregates, Difference, Window, compare, fold
from segmenter.reconcile import lake_entries as _lake_entries
from segmenter.schema import (
    ADMIN_AUDIT_MAXLEN,
    POPULARITY_BUCKET_S,
    POPULARITY_BUCKETS,
    SHOPPER_TTL_S,
    Keys,
)

__all__ = ["ReconcileReport", "reconcile"]

_ATTEMPTS = 5
_SAMPLE = 20
# KEYS[1] the partition meta, then the keys the operations name; ARGV[1] the offset compared,
# ARGV[2] msgpack [[key index, "z"|"h", member, value, ttl_s], ...]
_REPAIR = """
if (redis.call('HGET', KEYS[1], 'offset') or '0-0') ~= ARGV[1] then return -1 end
local ops = cmsgpack.unpack(ARGV[2])
for _, op in ipairs(ops) do
  local key = KEYS[op[1]]
  if op[2] == 'z' then
    if op[4] == 0 then redis.call('ZREM', key, op[3]) else redis.call('ZADD', key, op[4], op[3]) end
    if op[5] > 0 and redis.call('TTL', key) == -1 then redis.call('EXPIRE', key, op[5]) end
  else
    if op[4] == 0 then redis.call('HDEL', key, op[3]) else redis.call('HSET', key, op[3], op[4]) end
  end
end
return #ops
"""


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass(slots=True)
class ReconcileReport:
    """What one run compared and found (and repaired)."""

    from_ms: int
    to_ms: int
    ran_ms: int
    compared: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    repaired: int = 0

    def counts(self) -> dict[str, int]:
        """Differences per aggregate (every aggregate present)."""
        found = Counter(d.aggregate for d in self.differences)
        return {name: found[name] for name in AGGREGATES}

    def doc(self) -> dict[str, Any]:
        return {
            "from_ms": self.from_ms, "to_ms": self.to_ms, "ran_ms": self.ran_ms,
            "compared": dict(self.compared), "differences": self.counts(),
            "sample": [d.doc() for d in self.differences[:_SAMPLE]],
            "skipped_partitions": self.skipped, "repaired": self.repaired,
        }  # fmt: skip

    def line(self) -> str:
        found = " ".join(f"{k}={v}" for k, v in self.counts().items())
        seen = sum(self.compared.values())
        tail = f", repaired {self.repaired}" if self.repaired else ""
        skipped = f", skipped partitions {self.skipped}" if self.skipped else ""
        return f"reconciled {seen} values: differences {found}{tail}{skipped}"


async def _read(r: aioredis.Redis, keys: Keys, p: int) -> tuple[str, int, Aggregates] | None:
    """The partition's offset, watermark and aggregates, consistently; None if it kept moving."""
    meta = keys.partition_meta(p)
    kinds = {"popularity": keys.popularity(p, 0)[:-1], "covisitation": keys.covisitation(p, ""),
             "experiments": keys.experiment_counts(p, "")}  # fmt: skip
    for _ in range(_ATTEMPTS):
        before = await r.hget(meta, "offset")
        found = sorted([_text(k) async for k in r.scan_iter(match=f"{keys.prefix}:{{p:{p}}}:*")])
        listed = [(kind, k) for k in found for kind, pre in kinds.items() if k.startswith(pre)]
        pipe = r.pipeline(transaction=True)  # one slot: an atomic read
        pipe.hmget(meta, ["offset", "max_ts"])
        for kind, k in listed:
            if kind == "experiments":
                pipe.hgetall(k)
            else:
                pipe.zrange(k, 0, -1, withscores=True)
        offset_ts, *values = await pipe.execute()
        if offset_ts[0] != before:
            continue
        agg = Aggregates()
        for (kind, k), v in zip(listed, values, strict=True):
            rows = v.items() if kind == "experiments" else v
            agg.table(kind)[k[len(kinds[kind]) :]] = Counter(
                {_text(m): int(float(s)) for m, s in rows}
            )
        return _text(before or b"0-0"), int(offset_ts[1] or 0), agg
    return None


def _ops(keys: Keys, p: int, diffs: list[Difference], max_ts: int) -> tuple[list[str], list[Any]]:
    names = [keys.partition_meta(p)]
    ops: list[Any] = []
    window_s = (POPULARITY_BUCKETS + 1) * POPULARITY_BUCKET_S
    for d in diffs:
        if d.aggregate == "popularity":
            key, kind = keys.popularity(p, int(d.key)), "z"
            ttl = max(60, int(d.key) * POPULARITY_BUCKET_S + window_s - max_ts // 1000)
        elif d.aggregate == "covisitation":
            key, kind, ttl = keys.covisitation(p, d.key), "z", SHOPPER_TTL_S
        else:
            key, kind, ttl = keys.experiment_counts(p, d.key), "h", 0
        if key not in names:
            names.append(key)
        ops.append([names.index(key) + 1, kind, d.member, d.batch, ttl])
    return names, ops


async def _repair(
    r: aioredis.Redis, keys: Keys, p: int, diffs: list[Difference], *, offset: str, max_ts: int,
    who: str, now_ms: int,
) -> int:  # fmt: skip
    """Write the batch values (audited first); the number written, 0 if the offset moved."""
    names, ops = _ops(keys, p, diffs, max_ts)
    entry: dict[Any, Any] = {
        "ms": now_ms, "who": who, "action": "reconcile.repair", "target": f"partition:{p}",
        "before": orjson.dumps([[d.aggregate, d.key, d.member, d.stream] for d in diffs]),
        "after": orjson.dumps([[d.aggregate, d.key, d.member, d.batch] for d in diffs]),
    }  # fmt: skip
    await r.xadd(keys.audit, entry, maxlen=ADMIN_AUDIT_MAXLEN, approximate=True)
    done = int(await r.eval(_REPAIR, len(names), *names, offset, msgpack.packb(ops)))
    return max(done, 0)


def _batch(
    root: Path, p: int, offset: str, params: PartitionParams, window: Window
) -> tuple[Aggregates, set[str], set[str]]:
    return fold(_lake_entries(root, p, offset), params, window)


async def reconcile(
    r: aioredis.Redis, keys: Keys, archive: Path, *, partitions: int, params: PartitionParams,
    window: Window, tolerance: float = 0.0, repair: bool = False, who: str = "reconcile",
) -> ReconcileReport:  # fmt: skip
    """Sync the lake, then compare (and optionally repair) every partition; the report is
    stored for the console."""
    now = int(time.time() * 1000)
    report = ReconcileReport(window.from_ms, window.to_ms, now)
    root = lake.lake_root(archive)
    await asyncio.to_thread(lake.sync, archive)
    for p in range(partitions):
        read = await _read(r, keys, p)
        if read is None:
            report.skipped.append(p)
            continue
        offset, max_ts, stream = read
        batch, items, exps = await asyncio.to_thread(_batch, root, p, offset, params, window)
        compared, diffs = compare(p, stream, batch, touched=(items, exps), window=window,
                                  max_ts=max_ts, tolerance=tolerance)  # fmt: skip
        report.compared.update(compared)
        report.differences.extend(diffs)
        if repair and diffs:
            report.repaired += await _repair(r, keys, p, diffs, offset=offset, max_ts=max_ts,
                                             who=who, now_ms=now)  # fmt: skip
    await r.set(keys.reconcile_report, orjson.dumps(report.doc()))
    return report
