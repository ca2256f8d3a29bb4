"""A small producer client for the collector: buffer locally, send in batches, retry safely.

    async with Producer(httpx.AsyncClient(), ProducerSettings("http://origin:8080")) as p:
        p.send("view", user="u1", item="sku-1")        # never blocks, never raises
    # leaving the block flushes what is buffered

Events get their ``event_id`` and ``ts`` when they are buffered, so every retry of a batch
carries the same ids and the processor counts each event once. The buffer is bounded: when
it is full the new event is dropped and counted (a page or a POS terminal must never stall
on analytics). A background task flushes every ``flush_interval_s``, and at once when a
full batch is waiting. Transport errors, 429 and 5xx are retried with exponential backoff
(``Retry-After`` honoured); a batch that still fails goes back to the front of the buffer
for the next flush. Any other 4xx is final: the collector has dead-lettered the events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from segmenter.event import VERSION

__all__ = ["FlushStats", "Producer", "ProducerSettings"]

EVENTS_PATH = "/v1/events"


@dataclass(frozen=True, slots=True)
class ProducerSettings:
    """Where to send and how hard to try."""

    collector_url: str
    site_key: str = ""
    batch_max: int = 100  # the collector takes at most 500 per request
    buffer_max: int = 10_000
    flush_interval_s: float = 1.0
    attempts: int = 5
    backoff_s: float = 0.2
    backoff_max_s: float = 10.0
    timeout_s: float = 5.0


@dataclass
class FlushStats:
    """What happened to the events handed to the producer so far."""

    accepted: int = 0
    rejected: int = 0
    dropped: int = 0
    retries: int = 0
    requests: int = 0
    last_error: str = ""
    rejections: list[dict[str, Any]] = field(default_factory=list)


class _Retry(Exception):
    def __init__(self, why: str, after_s: float | None = None) -> None:
        super().__init__(why)
        self.after_s = after_s


class Producer:
    """Buffered, batching, retrying sender of Event v1 documents."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: ProducerSettings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.stats = FlushStats()
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- buffering ------------------------------------------------------------------------
    def send(self, type: str, user: str, **fields: Any) -> bool:
        """Buffer one event; False when the buffer is full and the event was dropped."""
        doc = {"v": VERSION, "type": type, "user": user, **fields}
        return self.send_doc(doc)

    def send_doc(self, doc: dict[str, Any]) -> bool:
        """Buffer one Event v1 document, stamping ``event_id`` and ``ts`` if missing."""
        if len(self._buffer) >= self.settings.buffer_max:
            self.stats.dropped += 1
            return False
        doc = {"v": VERSION, **doc}
        doc.setdefault("event_id", uuid.uuid4().hex)
        doc.setdefault("ts", int(self.clock() * 1000))
        self._buffer.append(doc)
        if len(self._buffer) >= self.settings.batch_max:
            self._wake.set()
        return True

    @property
    def pending(self) -> int:
        """Events buffered, not yet accepted or rejected."""
        return len(self._buffer)

    # -- sending --------------------------------------------------------------------------
    async def flush(self) -> FlushStats:
        """Send everything buffered now; batches that keep failing stay buffered."""
        async with self._lock:
            while self._buffer:
                n = min(self.settings.batch_max, len(self._buffer))
                batch = [self._buffer.popleft() for _ in range(n)]
                if not await self._send_with_retries(batch):
                    self._buffer.extendleft(reversed(batch))
                    break
        return self.stats

    async def _send_with_retries(self, batch: list[dict[str, Any]]) -> bool:
        s = self.settings
        for attempt in range(s.attempts):
            try:
                await self._post(batch)
                return True
            except _Retry as exc:
                self.stats.last_error = str(exc)
                if attempt + 1 == s.attempts:
                    return False
                self.stats.retries += 1
                delay = min(s.backoff_max_s, s.backoff_s * 2**attempt)
                await self.sleep(exc.after_s or delay * (0.5 + random.random() / 2))
        return False

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        headers = {"content-type": "application/json"}
        if self.settings.site_key:
            headers["x-p13n-site-key"] = self.settings.site_key
        self.stats.requests += 1
        try:
            resp = await self.client.post(
                self.settings.collector_url.rstrip("/") + EVENTS_PATH,
                json={"events": batch},
                headers=headers,
                timeout=self.settings.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            after = resp.headers.get("retry-after", "")
            raise _Retry(f"HTTP {resp.status_code}", float(after) if after.isdigit() else None)
        if resp.status_code != 202:
            self.stats.rejected += len(batch)
            self.stats.last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
            return
        doc = resp.json()
        self.stats.accepted += int(doc.get("accepted", 0))
        self.stats.rejected += int(doc.get("rejected", 0))
        for row in doc.get("results", []):
            if row.get("status") == "rejected":
                row["event_id"] = batch[row["index"]].get("event_id")
                self.stats.rejections.append(row)
        del self.stats.rejections[:-100]  # keep the newest for inspection only

    # -- lifecycle ------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.flush_interval_s)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        """Start the background flush task (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> FlushStats:
        """Stop the background task and flush what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return await self.flush()

    async def __aenter__(self) -> Producer:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
