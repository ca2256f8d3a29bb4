"""Experiment definitions: strict validation and the rules for changing them (pure).

- variant weights sum to 1 (within 1e-6), one per variation; coverage in [0, 1];
- a namespace (layer) range ``[start, end)`` may not overlap the range of another running
  experiment in the same layer whose schedule (``[start_ms, stop_ms)``) overlaps its own; an
  experiment past its ``stop_ms`` has ended by schedule and holds no range any more;
- coverage changes in place (ramp-safe: ranges shrink from fixed starts), but new weights, or
  variations renamed, reordered, added or removed, on a running experiment bump
  ``bucket_version`` (re-seeding the hash) and restart its results: deliberately, and the API
  says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cache_keys import hash_segment, is_hseg
from cache_keys.errors import WireError
from cache_keys.wire._check import SLUG_RE, whole_number
from origin import strategies
from origin.assignment import experiment_to_json, parse_experiment
from origin.errors import BadRequest, Conflict, Unprocessable

__all__ = [
    "DEFINITION_FIELDS",
    "build_definition",
    "check_layer",
    "check_routes",
    "ended_by_schedule",
    "needs_reseed",
]

# Fields a create or update may set; status, versions and timestamps are the API's.
DEFINITION_FIELDS = frozenset(
    {
        "name",
        "description",
        "variations",
        "weights",
        "coverage",
        "namespace",
        "segments",
        "segment_names",
        "routes",
        "start_ms",
        "stop_ms",
        "hash_version",
        "auto_stop",
    }
)
WEIGHT_TOLERANCE = 1e-6
# What a variation may say (``cache_keys.wire.Variation``); the wire parser is lenient for
# edges' sake, the admin API is strict.
VARIATION_FIELDS = frozenset(
    {"name", "list_variant", "origin", "origin_path", "weights", "origin_weights", "strategy"}
)
# What a named strategy decides: a variation naming one may not also set these itself.
STRATEGY_FIELDS = ("list_variant", "weights", "origin_weights")


def _text(doc: Mapping[str, Any], name: str, max_len: int) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str) or len(value) > max_len:
        raise BadRequest(f"{name} must be a string of at most {max_len} characters", field=name)
    return value


def _namespace(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value.get("layer"), value.get("start"), value.get("end")]
    ok = isinstance(value, list) and len(value) == 3
    if not ok or not isinstance(value[0], str) or not SLUG_RE.fullmatch(value[0]):
        raise BadRequest(
            "namespace must be {layer, start, end} with a slug layer", field="namespace"
        )
    start, end = value[1], value[2]
    nums = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (start, end))
    if not nums or not 0 <= start <= 1 or not 0 <= end <= 1:
        raise BadRequest("namespace needs 0 <= start < end <= 1", field="namespace")
    if start >= end:
        raise Unprocessable("namespace needs start < end", field="namespace")
    return [value[0], float(start), float(end)]


def _weights(doc: Mapping[str, Any], n: int) -> list[float]:
    weights = doc.get("weights")
    if weights is None:
        return [1.0 / n] * n
    if not isinstance(weights, list):
        raise BadRequest(f"weights must list one number per variation ({n})", field="weights")
    if not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights):
        raise BadRequest("weights must be non-negative numbers", field="weights")
    # Rules across fields or values (422): JSON Schema cannot state them.
    if len(weights) != n:
        raise Unprocessable(f"weights must list one number per variation ({n})", field="weights")
    if abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
        raise Unprocessable(f"weights must sum to 1, not {sum(weights):g}", field="weights")
    return [float(w) for w in weights]


def _segments(doc: Mapping[str, Any], segment_key: bytes) -> list[str]:
    hsegs = doc.get("segments", [])
    names = doc.get("segment_names", [])
    if not isinstance(hsegs, list) or not all(is_hseg(h) for h in hsegs):
        raise BadRequest("segments must be a list of hsegs", field="segments")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BadRequest("segment_names must be a list of segment names", field="segment_names")
    return list(dict.fromkeys([*hsegs, *(hash_segment(n, segment_key) for n in names)]))


def _coverage(doc: Mapping[str, Any]) -> float:
    cov = doc.get("coverage", 1.0)
    if not isinstance(cov, int | float) or isinstance(cov, bool) or not 0 <= cov <= 1:
        raise BadRequest("coverage must be a number in [0, 1]", field="coverage")
    return float(cov)


def _schedule(doc: Mapping[str, Any]) -> tuple[int | None, int | None]:
    out = []
    for name in ("start_ms", "stop_ms"):
        v = doc.get(name)
        ms = whole_number(v)
        if v is not None and (ms is None or ms < 0):
            raise BadRequest(f"{name} must be epoch milliseconds or null", field=name)
        out.append(ms)
    start, stop = out
    if start is not None and stop is not None and stop <= start:
        raise Unprocessable("stop_ms must be after start_ms", field="stop_ms")
    return start, stop


def build_definition(
    doc: Mapping[str, Any],
    *,
    key: str,
    seed: str,
    status: str,
    bucket_version: int,
    seg_key: bytes,
    stored_variations: bool = False,
) -> dict[str, Any]:
    """The validated wire form of an experiment from a definition document.

    Variations naming a strategy are written out from the catalog, unless they are
    ``stored_variations`` (already written out when defined: kept as they were, even if the
    catalog has changed since).
    """
    variations = doc.get("variations")
    if not isinstance(variations, list) or len(variations) < 2:
        raise BadRequest("variations must list at least two variations", field="variations")
    for i, v in enumerate(variations):
        unknown = set(v) - VARIATION_FIELDS if isinstance(v, dict) else set()
        if unknown:
            raise BadRequest(
                f"variations[{i}]: unknown fields {sorted(unknown)}",
                field=f"variations[{i}].{sorted(unknown)[0]}",
            )
    if not stored_variations:
        variations = [_with_strategy(v, i) for i, v in enumerate(variations)]
    start, stop = _schedule(doc)
    wire = {
        "key": key,
        "seed": seed,
        "variations": variations,
        "weights": _weights(doc, len(variations)),
        "coverage": _coverage(doc),
        "hash_version": doc.get("hash_version", 2),
        "bucket_version": bucket_version,
        "namespace": _namespace(doc.get("namespace")),
        "segments": _segments(doc, seg_key),
        "routes": doc.get("routes", []),
        "start_ms": start,
        "stop_ms": stop,
        "status": status,
    }
    try:
        exp = parse_experiment(wire)
    except WireError as exc:
        field = exc.field.removeprefix("experiments[0].")
        raise BadRequest(f"{field}: {exc.problem}", field=field) from exc
    names = [v.name for v in exp.variations]  # slugs by now (a name may be any JSON before)
    if len(set(names)) != len(names):
        raise Unprocessable("variation names must be unique", field="variations")
    out = experiment_to_json(exp)
    out["name"] = _text(doc, "name", 120)
    out["description"] = _text(doc, "description", 2000)
    auto_stop = doc.get("auto_stop", False)
    if not isinstance(auto_stop, bool):
        raise BadRequest("auto_stop must be true or false", field="auto_stop")
    out["auto_stop"] = auto_stop  # origin.admin.autostop
    return out


def _with_strategy(variation: Any, i: int) -> Any:
    """A variation naming a catalog strategy, with the strategy's weights written out."""
    if not isinstance(variation, dict) or variation.get("strategy") is None:
        return variation
    name = variation["strategy"]
    field = f"variations[{i}].strategy"
    if not isinstance(name, str):
        raise BadRequest("strategy must be the name of a ranking strategy", field=field)
    strategy = strategies.lookup(name)
    if strategy is None:
        known = ", ".join(sorted(strategies.CATALOG))
        raise Unprocessable(f"unknown strategy {name!r} (known: {known})", field=field)
    expanded = strategies.expand(variation, strategy)
    # the written-out form sent back as read is fine; a different value is a contradiction
    clash = [f for f in STRATEGY_FIELDS if f in variation and variation[f] != expanded[f]]
    if clash:
        raise Unprocessable(
            f"variations[{i}] names strategy {name!r} and sets {clash[0]} otherwise: the "
            f"strategy decides it (drop {clash[0]}, or drop the strategy and give weights)",
            field=f"variations[{i}].{clash[0]}",
        )
    return expanded


def needs_reseed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a change to a running experiment must bump its bucket version."""
    if before.get("status") != "running":
        return False
    names = [[v.get("name") for v in doc["variations"]] for doc in (before, after)]
    # A variation's place is its bucket range: renaming, reordering, adding or removing one
    # moves shoppers as surely as new weights do.
    return before.get("weights") != after.get("weights") or names[0] != names[1]


def ended_by_schedule(doc: Mapping[str, Any], now_ms: int) -> bool:
    """Whether ``doc``'s ``stop_ms`` has passed (a running experiment is then over)."""
    stop = doc.get("stop_ms")
    return stop is not None and now_ms >= stop


def _schedules_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    a_start, b_start = a.get("start_ms") or 0, b.get("start_ms") or 0
    a_stop, b_stop = a.get("stop_ms"), b.get("stop_ms")
    return (a_stop is None or b_start < a_stop) and (b_stop is None or a_start < b_stop)


def _holds_range(other: Mapping[str, Any], candidate: Mapping[str, Any], now_ms: int) -> bool:
    return bool(other.get("namespace")) and _holds_slot(other, candidate, now_ms)


def check_layer(
    candidate: Mapping[str, Any], others: Iterable[Mapping[str, Any]], now_ms: int
) -> None:
    """409 when ``candidate``'s namespace range overlaps a running one in its layer whose
    schedule overlaps its own (experiments past their ``stop_ms`` hold no range)."""
    ns = candidate.get("namespace")
    if ns is None:
        return
    layer, start, end = ns
    for other in others:
        if not _holds_range(other, candidate, now_ms):
            continue
        ons = other["namespace"]
        if ons[0] == layer and start < ons[2] and ons[1] < end:
            raise Conflict(
                f"namespace {layer} [{start}, {end}) overlaps running experiment "
                f"{other['key']!r} at [{ons[1]}, {ons[2]})",
                field="namespace",
                conflicts_with=other["key"],
            )


def _changes_rail(doc: Mapping[str, Any]) -> bool:
    """Whether any variation ranks, lists or routes differently from the control."""
    return any(
        v.get("weights") or v.get("origin_weights") or v.get("origin") or v.get("origin_path")
        or v.get("list_variant", "control") != "control"
        for v in doc.get("variations", [])
    )  # fmt: skip


def _shared_routes(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The routes both target, said in words; None when they share none."""
    ra, rb = set(a.get("routes") or ()), set(b.get("routes") or ())
    if not ra and not rb:
        return "every route"
    shared = (ra & rb) if ra and rb else (ra or rb)
    return "route " + ", ".join(sorted(shared)) if shared else None


def check_routes(
    candidate: Mapping[str, Any], others: Iterable[Mapping[str, Any]], now_ms: int
) -> list[str]:
    """Warnings for running experiments whose shoppers may also be in ``candidate``.

    Two experiments on a shared route that are not kept apart by one layer overlap: a
    shopper can be in both. When both change the rail (strategy, weights, list variant or
    origin), each field of the first experiment would mask the other's, so their arms would
    not do what they say: 409 with the reason. Otherwise the overlap is allowed and said,
    with the largest share of ``candidate``'s shoppers that can be in both.
    """
    warnings: list[str] = []
    ns = candidate.get("namespace")
    for other in others:
        if not _holds_slot(other, candidate, now_ms):
            continue
        ons = other.get("namespace")
        if ns and ons and ns[0] == ons[0]:
            continue  # one layer: check_layer keeps their ranges apart
        where = _shared_routes(candidate, other)
        if where is None:
            continue
        if _changes_rail(candidate) and _changes_rail(other):
            raise Conflict(
                f"running experiment {other['key']!r} also changes the rail on {where} and "
                "is not in the same layer: shoppers in both would get one experiment's "
                "ranking, not each arm's; put both in one layer with disjoint ranges, or "
                "target other routes",
                field="namespace",
                conflicts_with=other["key"],
            )
        share = float(other.get("coverage", 1.0))
        if ons:
            share *= ons[2] - ons[1]
        warnings.append(
            f"overlaps running experiment {other['key']!r} on {where} outside a shared "
            f"layer: up to {share:.0%} of this experiment's shoppers are in both; put both "
            "in one layer to keep them apart"
        )
    return warnings


def _holds_slot(other: Mapping[str, Any], candidate: Mapping[str, Any], now_ms: int) -> bool:
    return (
        other.get("key") != candidate.get("key")
        and other.get("status") == "running"
        and not ended_by_schedule(other, now_ms)
        and _schedules_overlap(candidate, other)
    )
