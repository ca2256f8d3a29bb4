"""Experiments as the origin stores them, and assignment (the same answer as the edge's).

Stored form (``Keys.experiments``, JSON): the wire form of ``cache_keys.wire.Experiment``
plus admin fields ``name``, ``description``, ``version``, ``created_ms``, ``updated_ms``,
``results_from_ms``, ``results_baseline`` (counter values when results last restarted) and
``reseeded_at_ms`` (when ``bucket_version`` was last bumped; absent if never).

Assignment follows GrowthBook: route and segment targeting and the schedule first, then the
namespace slice, then the hash of the effective seed into coverage-shrunk bucket ranges.
Bumping ``bucket_version`` re-seeds the hash as ``<seed>:b<version>`` (at version 0 the seed
is used as is): the one rule in ``cache_keys.experiments``, which edges use too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cache_keys.experiments import HOLDOUT_ARMS, HOLDOUT_KEY, assign_variation, in_holdout
from cache_keys.wire import EdgeConfig, Experiment, edge_config_to_json, parse_edge_config

__all__ = [
    "ADMIN_FIELDS",
    "assign",
    "assign_all",
    "experiment_to_json",
    "holdout_variant",
    "parse_experiment",
]

ADMIN_FIELDS = (
    "name",
    "description",
    "version",
    "created_ms",
    "updated_ms",
    "results_from_ms",
    "results_baseline",
    "reseeded_at_ms",
)


def parse_experiment(doc: Mapping[str, Any]) -> Experiment:
    """The wire ``Experiment`` in a stored or submitted document (``WireError`` if bad)."""
    cfg = parse_edge_config({"v": 1, "etag": "-", "generated_at_ms": 0, "experiments": [doc]})
    return cfg.experiments[0]


def experiment_to_json(exp: Experiment) -> dict[str, Any]:
    """The wire JSON of one experiment (what ``edge_config_to_json`` emits for it)."""
    doc: dict[str, Any] = edge_config_to_json(
        EdgeConfig(etag="-", generated_at_ms=0, experiments=(exp,))
    )["experiments"][0]
    return doc


def assign(exp: Experiment, sid: str, *, route: str, hseg: str, now_ms: int) -> int:
    """The variation index of shopper ``sid`` in ``exp``; -1 when not in the experiment.

    Targeting (schedule, route, segment) here; the hash, namespace and coverage are the
    shared ``cache_keys.experiments.assign_variation``, so the origin assigns exactly as the
    edges do.
    """
    if not exp.is_live(now_ms):
        return -1
    if exp.routes and route not in exp.routes:
        return -1
    if exp.segments and hseg not in exp.segments:
        return -1
    return assign_variation(exp, sid)


def assign_all(
    experiments: Iterable[Experiment], sid: str, *, route: str, hseg: str, now_ms: int
) -> dict[str, tuple[Experiment, int]]:
    """Every experiment the shopper is in on ``route``: key -> (experiment, variation index)."""
    out: dict[str, tuple[Experiment, int]] = {}
    for exp in experiments:
        index = assign(exp, sid, route=route, hseg=hseg, now_ms=now_ms)
        if index >= 0:
            out[exp.key] = (exp, index)
    return out


def holdout_variant(share: float, unit: str) -> dict[str, str]:
    """The global holdout's mark in a rail's ``variants`` (as the edge's ``edge.assign``):
    ``{"p13n-holdout": "holdout"}`` or ``{"p13n-holdout": "personalized"}``; ``{}`` while
    the share is 0."""
    if share <= 0:
        return {}
    return {HOLDOUT_KEY: HOLDOUT_ARMS[0] if in_holdout(unit, share) else HOLDOUT_ARMS[1]}
