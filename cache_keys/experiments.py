"""Assigning a shopper to one experiment, and the id of the exposure event that records it.

Every tier that assigns (the edges, the origin) or counts exposures (the segmenter) uses
these, so a shopper gets the same variation everywhere and a repeated exposure dedupes::

    >>> assign_variation(experiment, "q1w2e3r4t5y6u7i8o9p0aa")   # doctest: +SKIP
    1
    >>> exposure_event_id("q1w2e3r4t5y6u7i8o9p0aa", "rail-algo", 1764000000000)  # doctest: +SKIP
    'exp-5b0f…'                        # same shopper, experiment and UTC day: same id

GrowthBook semantics: the namespace slice first, then the hash of ``seed`` and the shopper id
into the coverage-shrunk bucket ranges. Bumping ``bucket_version`` (done when weights change)
re-seeds the hash as ``<seed>:b<version>``, which deliberately reshuffles every shopper; at
version 0 the seed is used as is, so assignments match GrowthBook's SDKs exactly.
"""

from __future__ import annotations

import hashlib
import time

from cache_keys import bucketing
from cache_keys.wire.config import Experiment

__all__ = [
    "HOLDOUT_ARMS",
    "HOLDOUT_KEY",
    "HOLDOUT_SALT",
    "assign_variation",
    "effective_seed",
    "experiment_ranges",
    "exposure_event_id",
    "in_holdout",
    "utc_day",
]

EXPOSURE_ID_PREFIX = "exp-"
# The global holdout's own hash seed: no experiment may use it (experiment seeds are what an
# admin types; this one is not a slug, so it cannot collide with a key used as the seed).
HOLDOUT_SALT = "p13n:global-holdout"
# How the holdout shows in a rail's ``variants`` and its exposure events, like an experiment
# with two arms (the admin API reserves the key), so the processor counts it as one.
HOLDOUT_KEY = "p13n-holdout"
HOLDOUT_ARMS = ("holdout", "personalized")


def effective_seed(experiment: Experiment) -> str:
    """The hashing seed: the experiment's seed, re-seeded once per bucket version."""
    if experiment.bucket_version == 0:
        return experiment.seed
    return f"{experiment.seed}:b{experiment.bucket_version}"


def assign_variation(experiment: Experiment, unit: str) -> int:
    """The variation index for the shopper id ``unit``; -1 when outside the experiment.

    Targeting (routes, segments, schedule, status) is the caller's business: this is only
    the deterministic hash, namespace and coverage part.
    """
    if not unit:
        return -1
    if experiment.namespace is not None and not bucketing.in_namespace(unit, experiment.namespace):
        return -1
    n = bucketing.hash(effective_seed(experiment), unit, experiment.hash_version)
    if n is None:
        return -1
    return bucketing.choose_variation(n, experiment_ranges(experiment))


def in_holdout(unit: str, share: float) -> bool:
    """Whether the shopper id ``unit`` is in the global holdout of ``share`` of shoppers.

    The same hash as experiments (FNV-1a, version 2) with its own salt, so the holdout is
    independent of every experiment's split and stable while ``share`` does not shrink:
    ``hash < share``, so raising the share only adds shoppers.
    """
    if not unit or share <= 0:
        return False
    n = bucketing.hash(HOLDOUT_SALT, unit, 2)
    return n is not None and n < share


# Bucket ranges depend only on (variations, coverage, weights); edges assign every request.
_RANGES: dict[tuple[int, float, tuple[float, ...]], list[tuple[float, float]]] = {}


def experiment_ranges(experiment: Experiment) -> list[tuple[float, float]]:
    """The experiment's bucket ranges (memoized: they depend only on its split)."""
    key = (len(experiment.variations), experiment.coverage, experiment.weights)
    ranges = _RANGES.get(key)
    if ranges is None:
        if len(_RANGES) >= 4096:
            _RANGES.clear()
        ranges = _RANGES[key] = bucketing.get_bucket_ranges(*key)
    return ranges


def utc_day(ts_ms: int) -> str:
    """``1764000000000`` -> ``"2025-11-24"`` (the UTC calendar day of an epoch-ms time)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts_ms // 1000))


def exposure_event_id(unit: str, experiment_key: str, ts_ms: int) -> str:
    """The Event v1 id of an exposure: one per shopper, experiment and UTC day (36 chars).

    Edges may log the same exposure on every request; the processor's event-id dedupe then
    counts it once a day.
    """
    material = f"{unit}\x1f{experiment_key}\x1f{utc_day(ts_ms)}".encode()
    return EXPOSURE_ID_PREFIX + hashlib.sha256(material).hexdigest()[:32]
