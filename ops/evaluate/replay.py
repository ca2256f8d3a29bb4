"""The throwaway store: its own Redis, the history written to the partition streams, the real
processor until drained, the catalog through the admin API, the segment lists (built from it:
without the catalog a list knows no category), then the real origin app asked for every shopper.

History is written to the streams directly (what the collector does after validating, without
its per-client rate limit): ``segmenter.event`` validated and encoded it, ``partition_of``
places it. Shopper ids of the file become anonymous-id shaped (a keyed digest), since the
origin's ``?user=`` takes only those; nothing else changes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import httpx
import orjson
import redis.asyncio as aioredis

from ops.local.redis import RedisServer
from origin.app import create_app
from origin.settings import Settings
from segmenter.connection import connect
from segmenter.event import Event, encode
from segmenter.lists import build_lists
from segmenter.processor import Processor
from segmenter.schema import GROUP, Keys, partition_of
from segmenter.segments import load_rules
from segmenter.settings import ProcessorSettings

__all__ = ["ReplayError", "Store", "shopper_id"]

PARTITIONS = 4
WRITE_CHUNK = 2000
DRAIN_TIMEOUT_S = 1800.0
POLL_S = 0.2
Progress = Callable[[str, int, int], None]


class ReplayError(RuntimeError):
    """The throwaway store could not be filled (the processor stopped or never drained)."""


def shopper_id(user: str) -> str:
    """A stable 22-character anonymous-id shaped stand-in for a file's shopper id."""
    digest = hashlib.blake2b(user.encode("utf-8"), digest_size=16, person=b"p13n-eval").digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:22]


@dataclass
class _Clock:
    now_s: float = 0.0

    def __call__(self) -> float:
        return self.now_s


class Store:
    """One evaluation's Redis, processor and origin (``async with``)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.server = RedisServer()
        self.keys = Keys()
        self.token = secrets.token_urlsafe(24)
        self.clock = _Clock()
        self.degraded = 0

    async def __aenter__(self) -> Store:
        self.server.start()
        self.r: aioredis.Redis = connect(self.server.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.r.aclose()
        self.server.close()

    async def load(self, history: list[Event]) -> None:
        """Write the history to the streams and apply it with the real processor."""
        for p in range(PARTITIONS):
            await self.r.xgroup_create(self.keys.stream(p), GROUP, id="0", mkstream=True)
        for start in range(0, len(history), WRITE_CHUNK):
            pipe = self.r.pipeline(transaction=False)
            for original in history[start : start + WRITE_CHUNK]:
                ev = replace(original, user=shopper_id(original.user))
                pipe.xadd(self.keys.stream(partition_of(ev.user, PARTITIONS)), {"e": encode(ev)})
            await pipe.execute()
            self.progress("write", min(start + WRITE_CHUNK, len(history)), len(history))
        stop = asyncio.Event()
        task = asyncio.create_task(Processor(self.processor_settings(), self.r).run(stop))
        try:
            await self._drained(len(history), task)
        finally:
            stop.set()
            await task

    async def build_lists(self, now_ms: int) -> dict[str, str]:
        """The segment and popular lists, as the processor builds them (after the catalog is
        in: a list item's category, stock and flags come from it); the shop's behaviour the
        build measured (``Keys.shop_stats``: repeat share, recent weight)."""
        ps = self.processor_settings()
        await build_lists(self.r, self.keys, load_rules(ps.segment_rules_path or None), ps, now_ms)
        stats = await self.r.hgetall(self.keys.shop_stats)
        return {_text(k): _text(v) for k, v in stats.items()}

    def processor_settings(self) -> ProcessorSettings:
        """The processor's settings for this store (no archive, lists built on demand)."""
        return ProcessorSettings(redis_url=self.server.url, partitions=PARTITIONS,
                                 archive_dir="", lists_interval_s=0,
                                 consumer="evaluate")  # fmt: skip

    async def _drained(self, total: int, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT_S
        fields = ("applied", "duplicate", "late", "dead", "erased", "skip")
        while True:
            if task.done():
                raise ReplayError(f"the processor stopped: {task.exception()!r}")
            done = 0
            for p in range(PARTITIONS):
                counts = await self.r.hmget(self.keys.partition_meta(p), fields)
                done += sum(int(c or 0) for c in counts)
            self.progress("process", min(done, total), total)
            if done >= total:
                return
            if loop.time() > deadline:
                raise ReplayError(f"the processor applied {done} of {total} events in time")
            await asyncio.sleep(POLL_S)

    async def catalog(self, client: httpx.AsyncClient, history: Iterable[Event]) -> None:
        """Every item of the history through the admin API's bulk import (last price seen)."""
        rows: dict[str, dict[str, object]] = {}
        for ev in history:
            if ev.item:
                rows[ev.item] = {"sku": ev.item, "stock": 1000, "price": ev.price,
                                 "category": ev.category or "other", "durable": False}  # fmt: skip
        body = b"\n".join(orjson.dumps(r) for r in rows.values())
        reply = await client.post("/v1/admin/catalog", content=body,
                                  headers={"content-type": "application/x-ndjson"})  # fmt: skip
        if reply.status_code >= 300:
            raise ReplayError(f"catalog import failed: {reply.status_code} {reply.text[:300]}")

    async def ask(
        self, client: httpx.AsyncClient, cut_ms: Mapping[str, int], routes: tuple[str, ...],
        k: int,
    ) -> dict[str, dict[str, list[str]]]:  # fmt: skip
        """Per route, per shopper, the origin's top ``k``, asked at the shopper's cut time."""
        out: dict[str, dict[str, list[str]]] = {r: {} for r in routes}
        total, done = len(cut_ms) * len(routes), 0
        for user, ms in cut_ms.items():
            self.clock.now_s = ms / 1000
            for route in routes:
                params = {"route": route, "k": str(k), "user": shopper_id(user)}
                reply = await client.get("/v1/recommendations", params=params)
                doc = reply.json()
                self.degraded += bool(doc.get("degraded"))
                out[route][user] = [i["item"] for i in doc.get("items", [])]
                done += 1
                self.progress("ask", done, total)
        return out

    def app_settings(self) -> Settings:
        """The origin's settings for this store (admin token; generous Redis budget)."""
        return Settings(redis_url=self.server.url, partitions=PARTITIONS, trusted_local=True,
                        admin_tokens={self.token: "admin"}, redis_timeout_ms=5000,
                        archive_dir="")  # fmt: skip

    def app(self) -> object:
        """The origin app on this store, its clock the evaluation's."""
        return create_app(self.app_settings(), clock=self.clock)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
