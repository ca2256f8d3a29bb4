"""The processor loop (``p13n segmenter run``): leases, reads, batches, housekeeping.

Each partition is owned by one process at a time through a lease in the partition's meta
hash; the lease's fencing token is checked inside the atomic commit, so a process that lost
its lease (paused, partitioned) cannot write. Processes share partitions evenly: each holds
at most ceil(partitions / live processes). On taking a partition a process first claims every
entry pending on other consumers, then drains its own pending entries, then reads new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from segmenter.aggregates import Entry, PartitionParams
from segmenter.archive import ArchiveWriter, prune
from segmenter.batch import Applier, Operators
from segmenter.features import FeatureParams
from segmenter.metrics import Metrics
from segmenter.schema import Keys
from segmenter.segments import SegmentRules, load_rules
from segmenter.settings import WRITE_MODES, ProcessorSettings
from segmenter.store import Hook, Lease, Store, StoreUnavailable
from segmenter.streams import Reader

__all__ = ["Processor", "operators_for", "tune_gc"]

log = logging.getLogger("p13n.segmenter")
TICK_S = 0.25
RETRY_S = 0.5
MAX_RETRY_S = 5.0
# Archive hour directories older than the retention are deleted this often.
PRUNE_INTERVAL_MS = 60_000
# Failures of the infrastructure rather than of the events: retried, never dead-lettered.
INFRA_ERRORS = (StoreUnavailable, OSError)


def tune_gc() -> None:
    """Garbage-collector settings for a processor process (called by its entry point).

    A batch allocates thousands of short-lived tracked objects (entries, events, effects)
    while the shopper cache is long-lived: with the default thresholds about a quarter of the
    CPU went to collections, and full ones paused the loop for up to ~90 ms. Objects alive
    at start-up are frozen out of the collector's way, and the young generation is collected
    every 20,000 net allocations instead of 700."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def operators_for(s: ProcessorSettings, rules: SegmentRules) -> Operators:
    """The operators' parameters from the settings."""
    return Operators(
        PartitionParams(s.allowed_lateness_ms, s.max_clock_skew_ms, s.experiment_revenue_cap_cents),
        FeatureParams(s.affinity_half_life_s * 1000, rules, s.segment_key),
    )


class Processor:
    """One processor process: owns some partitions and applies their batches."""

    def __init__(
        self,
        settings: ProcessorSettings,
        client: aioredis.Redis,
        *,
        metrics: Metrics | None = None,
        hook: Hook | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.s = settings
        self.r = client
        self.keys = Keys(settings.prefix)
        self.rules = load_rules(settings.segment_rules_path or None)
        self.store = Store(
            client, self.keys, hook, per_slot=WRITE_MODES[settings.writes],
            partitions=settings.partitions,
        )  # fmt: skip
        self.reader = Reader(client, self.keys, settings.consumer)
        self.metrics = metrics or Metrics()
        self.now_ms = now_ms
        self.owner = f"{settings.consumer}:{secrets.token_hex(4)}"
        archive = ArchiveWriter(Path(settings.archive_dir)) if settings.archive_dir else None
        self.applier = Applier(
            self.store,
            operators_for(settings, self.rules),
            archive=archive,
            lease_ttl_ms=settings.lease_ttl_ms,
            cache_size=settings.shopper_cache_size,
            cache_bytes=settings.shopper_cache_bytes,
        )
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.releasing: set[int] = set()
        self._next_lists_ms = 0
        self._next_prune_ms = 0
        self._lake_task: asyncio.Task[None] | None = None
        start = now_ms()
        # The first lake sync waits one interval: its child process (a Python start and
        # DuckDB) would take the CPU while the processor claims its partitions and catches
        # up (measured: a third of bench/processor.py's throughput).
        self._next_lake_ms = start + settings.lake_interval_s * 1000
        self._next_reconcile_ms = start + settings.reconcile_interval_s * 1000
        self._reconcile_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- main loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set; leases are released on the way out."""
        self._stop = stop or asyncio.Event()
        while not self._stop.is_set():
            try:
                await self._tick()
            except (StoreUnavailable, RedisError, OSError) as exc:
                log.warning("redis unavailable: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_S)
        self.releasing.update(self.tasks)
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for task in (self._lake_task, self._reconcile_task):  # finish what is in progress
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):  # the others rebalance at once
            await self.r.zrem(self.keys.members, self.owner)

    async def _tick(self) -> None:
        now = self.now_ms()
        members = self.keys.members
        # Counted by owner (unique per process), not by consumer name, which may be shared.
        await self.r.zadd(members, {self.owner: now + self.s.lease_ttl_ms})
        await self.r.zremrangebyscore(members, "-inf", now)
        live = max(1, int(await self.r.zcard(members)))
        target = math.ceil(self.s.partitions / live)
        for p in [p for p, t in self.tasks.items() if t.done()]:
            del self.tasks[p]
            self.releasing.discard(p)
        for p in range(self.s.partitions):
            if p not in self.tasks and len(self.tasks) < target:
                await self.reader.ensure_group(p)
                lease = await self.store.acquire(p, self.owner, self.s.lease_ttl_ms)
                if lease is not None:
                    self.tasks[p] = asyncio.create_task(self._own(lease))
        extra = sorted(set(self.tasks) - self.releasing)[target:]
        self.releasing.update(extra)
        self.metrics.owned.set(len(self.tasks))
        await self._housekeeping(now)

    async def _housekeeping(self, now: int) -> None:
        self.metrics.set_lag(await self.reader.lag(sorted(self.tasks)))
        self.metrics.dlq_depth.set(await self.r.xlen(self.keys.dlq))
        self._prune(now)
        self._lake(now)
        await self._reconcile(now)
        if self.s.lists_interval_s <= 0 or now < self._next_lists_ms:
            return
        self._next_lists_ms = now + self.s.lists_interval_s * 1000
        from segmenter.lists import build_lists_locked  # noqa: PLC0415 - periodic only

        try:
            await build_lists_locked(self.r, self.keys, self.rules, self.s, now)
        except (RedisError, OSError):
            raise
        except Exception:  # bad admin data must not stop event processing
            log.exception("segment list build failed")

    def _prune(self, now: int) -> None:
        """Archive retention, on its own schedule (lists may never be built here)."""
        if not self.s.archive_dir or now < self._next_prune_ms:
            return
        self._next_prune_ms = now + PRUNE_INTERVAL_MS
        try:
            prune(Path(self.s.archive_dir), self.s.archive_retention_days, now)
        except OSError as exc:  # a full or read-only disk must not stop event processing
            log.warning("archive retention: %s", exc)

    def _lake(self, now: int) -> None:
        """Parquet for the archive hours that changed, in a child process, on its own
        schedule: DuckDB's ~60 MB (library and buffers) live only as long as one sync, never
        in the processor, whose resident memory would otherwise step up at the first sync
        and stay there."""
        s = self.s
        busy = self._lake_task is not None and not self._lake_task.done()
        if not s.archive_dir or s.lake_interval_s <= 0 or now < self._next_lake_ms or busy:
            return
        self._next_lake_ms = now + s.lake_interval_s * 1000
        self._lake_task = asyncio.create_task(self._write_lake(now))

    async def _write_lake(self, now: int) -> None:
        args = (self.s.archive_dir, str(self.s.lake_retention_days), str(now))
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "segmenter.lake", *args,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await child.communicate()
        except OSError as exc:  # the lake must not stop event processing
            log.warning("event lake: %s", exc)
            return
        if child.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            log.warning("event lake: %s", lines[-1] if lines else f"exit {child.returncode}")

    async def _reconcile(self, now: int) -> None:
        """The scheduled batch check: one processor at a time (a lock for one interval)."""
        s = self.s
        busy = self._reconcile_task is not None and not self._reconcile_task.done()
        if not s.archive_dir or s.reconcile_interval_s <= 0 or now < self._next_reconcile_ms:
            return
        if busy:
            return
        self._next_reconcile_ms = now + s.reconcile_interval_s * 1000
        lock = self.keys.reconcile_lock
        if await self.r.set(lock, self.owner, nx=True, px=s.reconcile_interval_s * 1000):
            self._reconcile_task = asyncio.create_task(self._run_reconcile(now))

    async def _run_reconcile(self, now: int) -> None:
        from segmenter.reconcile import Window  # noqa: PLC0415 - periodic only
        from segmenter.reconcile_run import reconcile  # noqa: PLC0415

        s = self.s
        window = Window(now - s.reconcile_window_s * 1000, now)
        try:
            report = await reconcile(
                self.r, self.keys, Path(s.archive_dir), partitions=s.partitions,
                params=self.applier.ops.partition, window=window,
                tolerance=s.reconcile_tolerance, repair=s.reconcile_repair,
                who=f"processor:{self.owner}",
            )  # fmt: skip
        except Exception:  # the batch check must never stop event processing
            log.exception("reconciliation failed")
            self.metrics.reconcile_runs.labels("failed").inc()
            return
        self.metrics.observe_reconcile(report.counts(), report.repaired, bool(report.skipped))
        log.info("%s", report.line())

    # -- one partition ------------------------------------------------------------------
    async def _own(self, lease: Lease) -> None:
        """Process a partition until the lease is lost or released."""
        try:
            while not self._done(lease.partition):
                try:
                    if not await self._follow(lease):
                        log.info("partition %d: lease lost", lease.partition)
                        return
                except StoreUnavailable as exc:
                    log.warning("partition %d: %s; retrying", lease.partition, exc)
                    await self._pause(RETRY_S)
                    with contextlib.suppress(StoreUnavailable):
                        await self.reader.ensure_group(lease.partition)  # lost by Redis?
                except Exception:  # a bug must not spin: give the partition up, log loudly
                    log.exception("partition %d: giving it up", lease.partition)
                    await asyncio.sleep(RETRY_S)
                    break
            with contextlib.suppress(StoreUnavailable):
                await self.store.release(lease)
        finally:
            self.applier.forget(lease.partition)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the processor is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _done(self, partition: int) -> bool:
        return self._stop.is_set() or partition in self.releasing

    async def _drain(self, lease: Lease) -> bool:
        p, s = lease.partition, self.s
        while not self._done(p) and (
            entries := await self.reader.pending(p, s.batch_max_events, s.max_deliveries)
        ):
            if not await self._apply(lease, entries):
                return False
        return True

    async def _follow(self, lease: Lease) -> bool:
        """Claim, drain own pending, then follow new entries; False when the lease is lost."""
        p, s = lease.partition, self.s
        await self.reader.claim(p, 0)
        await self.reader.forget_idle(p, s.claim_idle_ms)
        if not await self._drain(lease):
            return False
        next_claim = next_renew = self.now_ms()
        while not self._done(p):
            now = self.now_ms()
            if now >= next_claim:
                next_claim = now + s.claim_idle_ms
                if await self.reader.claim(p, s.claim_idle_ms) and not await self._drain(lease):
                    return False
            entries = await self.reader.new(p, s.batch_max_events, s.read_block_ms)
            if entries:
                if not await self._apply(lease, entries):
                    return False
                next_renew = self.now_ms() + s.lease_ttl_ms // 3
            elif self.now_ms() >= next_renew:
                if not await self.store.renew(lease, s.lease_ttl_ms):
                    return False
                next_renew = self.now_ms() + s.lease_ttl_ms // 3
        return True

    async def _apply(self, lease: Lease, entries: list[Entry]) -> bool:
        """Apply one batch; False when the lease is lost.

        Redis or archive failures retry the same entries, with backoff, until they are
        applied, the lease is lost or the partition is let go (the entries then stay pending
        for the next owner). Reading them again instead would count a delivery per retry."""
        p, delay = lease.partition, RETRY_S
        while True:
            try:
                result = await self.applier.apply(lease, entries)
                break
            except INFRA_ERRORS as exc:
                self.applier.forget(p)  # a write may have landed before the failure
                log.warning("partition %d: %s; retrying the batch", p, exc)
                await self._pause(min(delay, self.s.lease_ttl_ms / 3000))
                delay = min(delay * 2, MAX_RETRY_S)
                if self._done(p):
                    return True
                with contextlib.suppress(StoreUnavailable):  # keep the lease while retrying
                    if not await self.store.renew(lease, self.s.lease_ttl_ms):
                        return False
        if result.status != "OK" or result.effects is None:
            self.applier.forget(p)
            return False
        self.metrics.observe_batch(result.effects, result.apply_s, self.now_ms())
        return True
