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

from cache_keys.experiments import HOLDOUT_ARMS, HOLDOUT_KEY, assign_variation, in_holdout
from cache_keys.wire import Experiment, Variation

__all__ = ["HOLDOUT", "PERSONALIZED", "Assignment", "Routing", "assign_all", "holdout", "routing"]


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


def holdout(share: float, shopper_id: str | None) -> Assignment | None:
    """The shopper's arm of the global holdout; None while there is none (or no shopper)."""
    if share <= 0 or shopper_id is None:
        return None
    return HOLDOUT if in_holdout(shopper_id, share) else PERSONALIZED


def assign_all(
    experiments: Sequence[Experiment],
    shopper_id: str | None,
    route: str,
    hseg: str,
    now_ms: int,
) -> tuple[Assignment, ...]:
    """Every live experiment targeting this route and segment that the shopper is in."""
    if shopper_id is None:
        return ()
    out = []
    for exp in experiments:
        if not exp.is_live(now_ms):
            continue
        if exp.routes and route not in exp.routes:
            continue
        if exp.segments and hseg not in exp.segments:
            continue
        index = assign_variation(exp, shopper_id)
        if index >= 0:
            out.append(Assignment(exp.key, index, exp.variations[index]))
    return tuple(out)


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
