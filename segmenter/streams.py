"""Reading the partition streams: consumer group, new entries, own pending, takeovers.

Entries come back decoded (``Entry`` with the event or the rejection); entries delivered
more often than the limit carry a rejection so the batch dead-letters them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from segmenter.aggregates import Entry
from segmenter.event import Rejection
from segmenter.precheck import Precheck
from segmenter.schema import GROUP, Keys, group_backlog
from segmenter.store import StoreUnavailable

__all__ = ["Reader", "to_entries"]

# XAUTOCLAIM JUSTID through EVAL: redis-py's reply parser drops the cursor for JUSTID.
# JUSTID also leaves the delivery counter alone; the next read of the entry counts it.
_AUTOCLAIM = """
return redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5],
                  'JUSTID')
"""


# The processor's decoder: most entries take the compiled fast path (``segmenter.precheck``),
# decisions identical to ``event.decode``'s (tests/segmenter/test_precheck.py).
_DECODER = Precheck()


def _decode_one(stream_id: Any, fields: Any) -> Entry:
    sid = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
    ms, _, seq = sid.partition("-")
    key = (int(ms), int(seq or 0))  # ``parse_id``, inline: once per entry read
    raw = fields.get(b"e") if fields else None
    if raw is None:
        why = "entry trimmed or without an 'e' field" if fields is None else "no 'e' field"
        return Entry(sid, b"", None, Rejection("$", why), key)
    decoded = _DECODER.decode(raw)
    if isinstance(decoded, Rejection):
        return Entry(sid, raw, None, decoded, key)
    return Entry(sid, raw, decoded, None, key)


def to_entries(items: Sequence[Any]) -> list[Entry]:
    """XREADGROUP / XAUTOCLAIM / XRANGE items -> entries."""
    return [_decode_one(sid, fields) for sid, fields in items]


class Reader:
    """Stream reads of one consumer."""

    def __init__(self, client: aioredis.Redis, keys: Keys, consumer: str) -> None:
        self.r = client
        self.keys = keys
        self.consumer = consumer

    async def ensure_group(self, partition: int) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            await self.r.xgroup_create(self.keys.stream(partition), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreUnavailable(str(exc)) from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def new(self, partition: int, count: int, block_ms: int) -> list[Entry]:
        """Entries never delivered to the group."""
        stream = self.keys.stream(partition)
        try:
            reply: Any = await self.r.xreadgroup(
                GROUP, self.consumer, {stream: ">"}, count=count, block=block_ms or None
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return to_entries(reply[0][1]) if reply else []

    async def pending(self, partition: int, count: int, max_deliveries: int) -> list[Entry]:
        """This consumer's own pending entries (delivered, not acknowledged), oldest first.

        Reading them counts a delivery. When the oldest was already delivered more than once
        (its batch failed, or its process died, after a re-read) it is read alone, and so are
        the next ones while that holds: an event that fails by itself then reaches the
        delivery limit alone, and the valid events read with it are applied one by one."""
        stream = self.keys.stream(partition)
        try:
            info: Any = await self.r.xpending_range(
                stream, GROUP, min="-", max="+", count=count, consumername=self.consumer
            )
            if not info:
                return []
            if int(info[0]["times_delivered"]) > 1:
                info = info[:1]
            reply: Any = await self.r.xreadgroup(
                GROUP, self.consumer, {stream: "0"}, count=len(info)
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        items = reply[0][1] if reply else []
        # Delivery counts after this read.
        times = {p["message_id"]: int(p["times_delivered"]) + 1 for p in info}
        out = []
        for entry in to_entries(items):
            n = times.get(entry.stream_id.encode(), 1)
            over = Rejection("$", f"delivered {n} times, over the limit")
            out.append(
                Entry(entry.stream_id, entry.raw, None, over) if n > max_deliveries else entry
            )
        return out

    async def claim(self, partition: int, min_idle_ms: int) -> int:
        """Take over entries idle on other consumers (all of them when ``min_idle_ms`` is 0)."""
        stream = self.keys.stream(partition)
        claimed, start = 0, "0-0"
        try:
            while True:
                reply: Any = await self.r.eval(
                    _AUTOCLAIM, 1, stream, GROUP, self.consumer, min_idle_ms, start, 1000
                )
                start, ids = reply[0], reply[1]
                claimed += len(ids)
                if start in (b"0-0", "0-0"):
                    return claimed
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def forget_idle(self, partition: int, min_idle_ms: int) -> int:
        """Delete other consumers with nothing pending, idle ``min_idle_ms``; how many went.

        Each process has its own consumer name, so without this the group would collect one
        consumer per process ever started. Called by a partition's new owner (no one else
        reads the stream then); a live consumer deleted here is recreated by its next read."""
        stream = self.keys.stream(partition)
        try:
            consumers: Any = await self.r.xinfo_consumers(stream, GROUP)
            gone = 0
            for c in consumers:
                name = c["name"].decode() if isinstance(c["name"], bytes) else str(c["name"])
                idle = int(c["idle"]) >= min_idle_ms
                if name != self.consumer and idle and not int(c["pending"]):
                    gone += int(await self.r.xgroup_delconsumer(stream, GROUP, name) == 0)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return gone

    async def lag(self, partitions: Sequence[int]) -> dict[int, int]:
        """Entries not yet delivered to the group, per partition (Redis 7 ``lag``)."""
        out: dict[int, int] = {}
        try:
            for p in partitions:
                groups: Any = await self.r.xinfo_groups(self.keys.stream(p))
                if any(g.get("name") in (GROUP, GROUP.encode()) for g in groups):
                    out[p] = group_backlog(groups)["behind"]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return out
