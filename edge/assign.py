"""Which experiments a request is in, and what their variations change.

An experiment applies when it is running and inside its schedule, targets the route (or no
route) and the segment (or no segment), and the shopper falls in its namespace and coverage
(``cache_keys.experiments.assign_variation``). Variations may route: serve another
segment-list variant, send the origin fallback to another origin or path, reweight reranking.
When several assigned variations route, the first experiment in config order wins each field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from cache_keys import bucketing
from cache_keys.experiments import (
    HOLDOUT_ARMS,
    HOLDOUT_KEY,
    HOLDOUT_SALT,
    effective_seed,
    experiment_ranges,
    in_holdout,
)
from cache_keys.wire import Experiment, Variation

__all__ = [
    "HOLDOUT",
    "PERSONALIZED",
    "Assignment",
    "ExperimentTable",
    "Routing",
    "assign_all",
    "experiment_table",
    "holdout",
    "routing",
]


class Assignment(NamedTuple):
    """One experiment the request is in, and the variation it got."""

    experiment: str
    variant: int  # the variation's index: what keys and GrowthBook call the variation
    variation: Variation


class Routing(NamedTuple):
    """What the assigned variations change for this request."""

    list_variant: str = "control"
    origin: str | None = None
    origin_path: str | None = None
    weights: Mapping[str, float] = MappingProxyType({})


_CONTROL = Routing()
# The global holdout's two arms, as assignments: they change no routing (a held-out shopper
# gets the anonymous segment's list, see ``edge.plan.decide``), only the variants and the key.
HOLDOUT = Assignment(HOLDOUT_KEY, 0, Variation(HOLDOUT_ARMS[0]))
PERSONALIZED = Assignment(HOLDOUT_KEY, 1, Variation(HOLDOUT_ARMS[1]))


class _Row(NamedTuple):
    """One running experiment, with everything that does not depend on the request."""

    key: str
    start_ms: int | None
    stop_ms: int | None
    routes: frozenset[str]
    segments: frozenset[str]
    namespace: tuple[str, float, float] | None  # (the v1 hash's "__" + name, start, end)
    lane: int  # its seed's lane of ``ExperimentTable.lanes``; -1 hashes alone (version 1)
    seed: str
    ranges: tuple[tuple[float, float], ...]
    arms: tuple[Assignment, ...]  # per variation, built once


class ExperimentTable:
    """A config's running experiments compiled once: their seeds' FNV lanes, targeting sets,
    bucket ranges and prebuilt assignments; a request then walks the shopper id once for
    every experiment and the holdout (``cache_keys.bucketing.SeedLanes``)."""

    __slots__ = ("lanes", "rows")

    def __init__(self, experiments: Sequence[Experiment]) -> None:
        # Lane 0: the id alone (version 1 hashes and namespaces append to it); lane 1: the
        # holdout's salt; then one per version 2 experiment.
        seeds = ["", HOLDOUT_SALT]
        rows = []
        for exp in experiments:
            if exp.status != "running":  # is_live's status part: never live in this config
                continue
            seed = effective_seed(exp)
            lane = -1  # version 1: hashed alone
            if exp.hash_version == 2:
                lane = len(seeds)
                seeds.append(seed)
            elif exp.hash_version != 1:
                continue  # an unknown hash version assigns nobody (``bucketing.hash``)
            ns = exp.namespace
            rows.append(
                _Row(
                    exp.key,
                    exp.start_ms,
                    exp.stop_ms,
                    frozenset(exp.routes),
                    frozenset(exp.segments),
                    None if ns is None else ("__" + ns[0], ns[1], ns[2]),
                    lane,
                    seed,
                    tuple(experiment_ranges(exp)),
                    tuple(Assignment(exp.key, i, v) for i, v in enumerate(exp.variations)),
                )
            )
        self.lanes = bucketing.SeedLanes(seeds)
        self.rows = tuple(rows)

    def assign(
        self, states: Sequence[int], route: str, hseg: str, now_ms: int
    ) -> tuple[Assignment, ...]:
        """``assign_all`` from the id's lane states (``self.lanes.states(shopper_id)``)."""
        out = []
        for row in self.rows:
            if (row.start_ms is not None and now_ms < row.start_ms) or (
                row.stop_ms is not None and now_ms >= row.stop_ms
            ):
                continue
            if (row.routes and route not in row.routes) or (
                row.segments and hseg not in row.segments
            ):
                continue
            index = _variation(row, states)
            if index >= 0:
                out.append(row.arms[index])
        return tuple(out)


def _variation(row: _Row, states: Sequence[int]) -> int:
    """``cache_keys.experiments.assign_variation``, from the lane states."""
    if row.namespace is not None:
        suffix, start, end = row.namespace
        ns = (bucketing.fnv_continue(states[0], suffix) % 1000) / 1000
        if not start <= ns < end:
            return -1
    if row.lane >= 0:
        n = bucketing.v2_of_state(states[row.lane])
    else:
        n = (bucketing.fnv_continue(states[0], row.seed) % 1000) / 1000
    for index, (start, end) in enumerate(row.ranges):
        if start <= n < end:
            return index
    return -1


_TABLES: dict[int, tuple[Sequence[Experiment], ExperimentTable]] = {}
_TABLES_MAX = 64  # configs kept per process (a new config every few minutes)


def experiment_table(experiments: Sequence[Experiment]) -> ExperimentTable:
    """The compiled table of a config's experiments, memoized by identity (configs are
    immutable)."""
    hit = _TABLES.get(id(experiments))
    if hit is not None and hit[0] is experiments:
        return hit[1]
    table = ExperimentTable(experiments)
    if len(_TABLES) >= _TABLES_MAX:
        _TABLES.clear()
    _TABLES[id(experiments)] = (experiments, table)
    return table


def holdout(
    share: float, shopper_id: str | None, states: Sequence[int] | None = None
) -> Assignment | None:
    """The shopper's arm of the global holdout; None while there is none (or no shopper).
    ``states`` are the id's lane states of an ``ExperimentTable`` (lane 1 is the salt's)."""
    if share <= 0 or shopper_id is None:
        return None
    if states is None or not shopper_id:
        return HOLDOUT if in_holdout(shopper_id, share) else PERSONALIZED
    return HOLDOUT if bucketing.v2_of_state(states[1]) < share else PERSONALIZED


def assign_all(
    experiments: Sequence[Experiment],
    shopper_id: str | None,
    route: str,
    hseg: str,
    now_ms: int,
) -> tuple[Assignment, ...]:
    """Every live experiment targeting this route and segment that the shopper is in."""
    if not shopper_id:
        return ()
    table = experiment_table(experiments)
    return table.assign(table.lanes.states(shopper_id), route, hseg, now_ms)


def routing(assignments: Sequence[Assignment]) -> Routing:
    """Fold the assigned variations into one routing; first experiment wins each field."""
    if not assignments:
        return _CONTROL
    list_variant: str | None = None
    origin: str | None = None
    path: str | None = None
    weights: dict[str, float] = {}
    for a in assignments:
        v = a.variation
        if list_variant is None and v.list_variant != "control":
            list_variant = v.list_variant
        origin = origin or v.origin
        path = path or v.origin_path
        for name, w in v.weights.items():
            weights.setdefault(name, w)
    return Routing(list_variant or "control", origin, path, weights)
