"""Processor configuration: one frozen value built once from the environment at the entry point.

Each field's metadata names its environment variable, what it does and whether it is a secret;
``tools/config_doc.py`` writes docs/CONFIGURATION.md from it. Units are in the field names.
Only ``ProcessorSettings.from_env`` reads ``os.environ``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from segmenter.connection import cluster_url
from segmenter.schema import DEFAULT_PARTITIONS, DEFAULT_PREFIX

__all__ = [
    "DEFAULT_SHOPPER_CACHE",
    "DEFAULT_SHOPPER_CACHE_BYTES",
    "DEV_SEGMENT_KEY",
    "WRITE_MODES",
    "ProcessorSettings",
    "SettingsError",
]

# Must equal origin.settings._DEV_SEGMENT_KEY (a test checks): both tiers hash segments alike.
# Public (it is in the source): only trusted code uses it, a test's own settings or a run with
# P13N_TRUSTED_LOCAL=1; ``from_env`` refuses to start without P13N_SEGMENT_KEY otherwise.
DEV_SEGMENT_KEY = b"dev-segment-key-change-me-0123456789"
# Shopper states a processor keeps over all its partitions (``batch.ShopperCache``): from
# ~1 KB (one visit) to ~55 KB (a long history) each, so the count has a byte bound beside it
# that holds the cache well under 100 MB whatever the shoppers' histories.
DEFAULT_SHOPPER_CACHE = 20_000
DEFAULT_SHOPPER_CACHE_BYTES = 64 * 1024 * 1024
# P13N_WRITES values -> ``Store(per_slot=…)``
WRITE_MODES: dict[str, bool | None] = {"auto": None, "batched": False, "per-slot": True}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _env(name: str, doc: str, **shown: Any) -> dict[str, Any]:
    """A field's metadata: its variable and what it does (plus how the document shows it)."""
    return {"env": name, "doc": doc, **shown}


N = TypeVar("N", int, float)


def _num(env: Mapping[str, str], name: str, default: N, kind: Callable[[str], N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r} is not {what}") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _num(env, name, default, int)


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """Everything ``p13n segmenter run`` needs; each field's metadata documents its variable."""

    redis_url: str = field(
        default="",
        metadata=_env(
            "P13N_REDIS_URL",
            "the online store and the event streams. A `redis+cluster://h1:p1,h2:p2` URL (or "
            "`?cluster=1`), or cluster nodes as h1:p1,h2:p2, select Redis Cluster",
            also=("REDIS_URL", "P13N_REDIS_CLUSTER_NODES", "REDIS_CLUSTER_NODES"),
            default="required",
            secret=True,  # a URL may carry a password
        ),
    )
    prefix: str = field(
        default=DEFAULT_PREFIX,
        metadata=_env("P13N_PREFIX", "key namespace in Redis (the origin's value)"),
    )
    partitions: int = field(
        default=DEFAULT_PARTITIONS,
        metadata=_env(
            "P13N_PARTITIONS", "number of stream partitions, 1-1024 (the origin's value)"
        ),
    )
    consumer: str = field(
        default="segmenter-1",
        metadata=_env(
            "P13N_CONSUMER",
            "consumer name in the stream groups. Nothing depends on it being stable: whoever takes "
            "a partition first claims what is pending on other consumers, and consumers left with "
            "nothing pending are deleted",
            default="segmenter-<hostname>-<pid>",
        ),
    )
    batch_max_events: int = field(
        default=1000,
        metadata=_env(
            "P13N_BATCH_MAX_EVENTS", "entries read per XREADGROUP and applied per atomic step"
        ),
    )
    shopper_cache_size: int = field(
        default=DEFAULT_SHOPPER_CACHE,
        metadata=_env(
            "P13N_SHOPPER_CACHE_SIZE",
            "shopper states a processor keeps in memory over all its partitions (the least "
            "recently written goes first; a shopper from its second event on); a cached "
            "shopper is not read before its next write",
        ),
    )
    shopper_cache_bytes: int = field(
        default=DEFAULT_SHOPPER_CACHE_BYTES,
        metadata=_env(
            "P13N_SHOPPER_CACHE_BYTES",
            "approximate bytes those cached shopper states may take (a long history weighs "
            "more; the least recently written goes first)",
        ),
    )
    read_block_ms: int = field(
        default=50,
        metadata=_env("P13N_READ_BLOCK_MS", "how long an idle XREADGROUP waits for new entries"),
    )
    lease_ttl_ms: int = field(
        default=10_000,
        metadata=_env(
            "P13N_LEASE_TTL_MS", "a partition lease lasts this long unless renewed (every batch)"
        ),
    )
    claim_idle_ms: int = field(
        default=30_000,
        metadata=_env(
            "P13N_CLAIM_IDLE_MS", "entries pending this long on another consumer are taken over"
        ),
    )
    max_deliveries: int = field(
        default=20,
        metadata=_env(
            "P13N_MAX_DELIVERIES", "an entry delivered more often than this goes to the DLQ"
        ),
    )
    allowed_lateness_ms: int = field(
        default=5 * 60_000,
        metadata=_env("P13N_ALLOWED_LATENESS_MS", "watermark = max event time seen minus this"),
    )
    max_clock_skew_ms: int = field(
        default=5 * 60_000,
        metadata=_env(
            "P13N_MAX_CLOCK_SKEW_MS",
            "events stamped further than this after their arrival are rejected to the DLQ",
        ),
    )
    experiment_revenue_cap_cents: int = field(
        default=100_000,
        metadata=_env(
            "P13N_EXPERIMENT_REVENUE_CAP_CENTS",
            "experiment results count each shopper's revenue up to this many cents (minor "
            "units) in the revenue metrics' means and variances (winsorizing: one huge order "
            "cannot swing a test); uncapped totals are kept beside them",
        ),
    )
    affinity_half_life_s: int = field(
        default=7 * 86_400,
        metadata=_env(
            "P13N_AFFINITY_HALF_LIFE_S", "category affinity halves over this much event time"
        ),
    )
    archive_dir: str = field(
        default="var/archive",
        metadata=_env(
            "P13N_ARCHIVE_DIR", "cold storage of every valid event (replay and rebuild read it)"
        ),
    )
    archive_retention_days: int = field(
        default=30,
        metadata=_env("P13N_ARCHIVE_RETENTION_DAYS", "archive files older than this are deleted"),
    )
    lake_interval_s: int = field(
        default=300,
        metadata=_env(
            "P13N_LAKE_INTERVAL_S",
            "how often the archive's changed hours are written to the Parquet lake in "
            "<archive>/lake (segmenter.lake); 0: never",
        ),
    )
    lake_retention_days: int = field(
        default=400,
        metadata=_env("P13N_LAKE_RETENTION_DAYS", "how long the lake keeps an hour's file"),
    )
    reconcile_interval_s: int = field(
        default=3600,
        metadata=_env(
            "P13N_RECONCILE_INTERVAL_S",
            "how often one processor recomputes the last window of event time from the lake "
            "and reports differences from the stream's values (segmenter.reconcile); the "
            "first run one interval after start; 0: never",
        ),
    )
    reconcile_window_s: int = field(
        default=86_400,
        metadata=_env("P13N_RECONCILE_WINDOW_S", "the event-time window each check recomputes"),
    )
    reconcile_tolerance: float = field(
        default=0.0,
        metadata=_env(
            "P13N_RECONCILE_TOLERANCE", "relative difference reported as a mismatch, in [0, 1)"
        ),
    )
    reconcile_repair: bool = field(
        default=False,
        metadata=_env(
            "P13N_RECONCILE_REPAIR", "1: a check also writes the batch values over the stream's"
        ),
    )
    segment_rules_path: str = field(
        default="",
        metadata=_env(
            "P13N_SEGMENT_RULES",
            "path of the segment rules (TOML)",
            default="empty (the built-in rules)",
        ),
    )
    segment_key: bytes = field(
        default=DEV_SEGMENT_KEY,
        metadata=_env(
            "P13N_SEGMENT_KEY",
            "keyed hash for hseg (must match the origin's)",
            secret=True,
            type="str",
            default="required (a public dev key with P13N_TRUSTED_LOCAL=1)",
        ),
    )
    lists_interval_s: int = field(
        default=60,
        metadata=_env(
            "P13N_LISTS_INTERVAL_S", "how often the processor rebuilds segment lists (0 = never)"
        ),
    )
    list_size: int = field(
        default=200, metadata=_env("P13N_LIST_SIZE", "candidates per segment list (100-300)")
    )
    metrics_port: int = field(
        default=0,
        metadata=_env(
            "P13N_METRICS_PORT", "serve Prometheus metrics on 127.0.0.1:<port> (0 = off)"
        ),
    )
    test_kill_at_write: int = field(
        default=0,
        metadata=_env(
            "P13N_TEST_KILL_AT_WRITE", "test hook: SIGKILL this process before its n-th write step"
        ),
    )
    writes: str = field(
        default="auto",
        metadata=_env(
            "P13N_WRITES",
            "how a batch is written. per-slot: one-slot scripts (shoppers, then the partition's "
            "commit), required on Redis Cluster; batched: one script for the whole batch, single "
            "Redis only; auto: per-slot for a cluster client, else batched",
            type="auto | batched | per-slot",
        ),
    )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, hashes: bool = True
    ) -> ProcessorSettings:
        """Build settings from ``env`` (default ``os.environ``); raises ``SettingsError``.
        ``hashes=False`` is for commands that never hash a segment (reading the lake):
        they need no key, and get an empty one that hashes nothing."""
        e = os.environ if env is None else env
        key = e.get("P13N_SEGMENT_KEY")
        trusted = e.get("P13N_TRUSTED_LOCAL", "") in ("1", "true", "yes")
        if not key and hashes and not trusted:
            # Hashing with the public dev key would write segment ids nobody else knows
            # (a stack's origin and edges use its own key): refuse, naming the setting.
            raise SettingsError(
                "P13N_SEGMENT_KEY is not set: the segment hash key (the origin's value; "
                "`--stack DIR` or P13N_STACK reads a `p13n up` stack's key, `p13n keygen` "
                "makes one)"
            )
        s = cls(
            redis_url=cluster_url(
                e.get("P13N_REDIS_URL") or e.get("REDIS_URL") or "",
                e.get("P13N_REDIS_CLUSTER_NODES") or e.get("REDIS_CLUSTER_NODES") or "",
            ),
            prefix=e.get("P13N_PREFIX", DEFAULT_PREFIX),
            partitions=_int(e, "P13N_PARTITIONS", DEFAULT_PARTITIONS),
            consumer=e.get("P13N_CONSUMER") or f"segmenter-{socket.gethostname()}-{os.getpid()}",
            batch_max_events=_int(e, "P13N_BATCH_MAX_EVENTS", 1000),
            shopper_cache_size=_int(e, "P13N_SHOPPER_CACHE_SIZE", DEFAULT_SHOPPER_CACHE),
            shopper_cache_bytes=_int(e, "P13N_SHOPPER_CACHE_BYTES", DEFAULT_SHOPPER_CACHE_BYTES),
            read_block_ms=_int(e, "P13N_READ_BLOCK_MS", 50),
            lease_ttl_ms=_int(e, "P13N_LEASE_TTL_MS", 10_000),
            claim_idle_ms=_int(e, "P13N_CLAIM_IDLE_MS", 30_000),
            max_deliveries=_int(e, "P13N_MAX_DELIVERIES", 20),
            allowed_lateness_ms=_int(e, "P13N_ALLOWED_LATENESS_MS", 5 * 60_000),
            max_clock_skew_ms=_int(e, "P13N_MAX_CLOCK_SKEW_MS", 5 * 60_000),
            experiment_revenue_cap_cents=_int(e, "P13N_EXPERIMENT_REVENUE_CAP_CENTS", 100_000),
            affinity_half_life_s=_int(e, "P13N_AFFINITY_HALF_LIFE_S", 7 * 86_400),
            archive_dir=e.get("P13N_ARCHIVE_DIR", "var/archive"),
            archive_retention_days=_int(e, "P13N_ARCHIVE_RETENTION_DAYS", 30),
            lake_interval_s=_int(e, "P13N_LAKE_INTERVAL_S", 300),
            lake_retention_days=_int(e, "P13N_LAKE_RETENTION_DAYS", 400),
            reconcile_interval_s=_int(e, "P13N_RECONCILE_INTERVAL_S", 3600),
            reconcile_window_s=_int(e, "P13N_RECONCILE_WINDOW_S", 86_400),
            reconcile_tolerance=_num(e, "P13N_RECONCILE_TOLERANCE", 0.0, float),
            reconcile_repair=e.get("P13N_RECONCILE_REPAIR", "0") in ("1", "true", "yes"),
            segment_rules_path=e.get("P13N_SEGMENT_RULES", ""),
            segment_key=key.encode() if key else (DEV_SEGMENT_KEY if trusted else b""),
            lists_interval_s=_int(e, "P13N_LISTS_INTERVAL_S", 60),
            list_size=_int(e, "P13N_LIST_SIZE", 200),
            metrics_port=_int(e, "P13N_METRICS_PORT", 0),
            test_kill_at_write=_int(e, "P13N_TEST_KILL_AT_WRITE", 0),
            writes=e.get("P13N_WRITES") or "auto",
        )
        s.check()
        return s

    def check(self) -> None:
        """Reject values that cannot work."""
        if not 1 <= self.partitions <= 1024:
            raise SettingsError("P13N_PARTITIONS must be between 1 and 1024")
        if self.shopper_cache_size < 0:
            raise SettingsError("P13N_SHOPPER_CACHE_SIZE must be 0 or more")
        if not 1 <= self.batch_max_events <= 10_000:
            raise SettingsError("P13N_BATCH_MAX_EVENTS must be between 1 and 10000")
        if not 100 <= self.list_size <= 300:
            raise SettingsError("P13N_LIST_SIZE must be between 100 and 300")
        if not 0 <= self.reconcile_tolerance < 1:
            raise SettingsError("P13N_RECONCILE_TOLERANCE must be a fraction in [0, 1)")
        if not 1 <= self.experiment_revenue_cap_cents <= 10_000_000:
            # squared in 64-bit Redis counters: 10^14 per shopper leaves room for ~90,000
            # shoppers at the cap per variant and partition
            raise SettingsError("P13N_EXPERIMENT_REVENUE_CAP_CENTS must be between 1 and 10000000")
        if self.writes not in WRITE_MODES:
            raise SettingsError(f"P13N_WRITES must be one of {', '.join(WRITE_MODES)}")
        if self.lease_ttl_ms < 100 or self.max_deliveries < 1:
            raise SettingsError("P13N_LEASE_TTL_MS >= 100 and P13N_MAX_DELIVERIES >= 1 needed")
