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
from origin.assignment import experiment_to_json, parse_experiment
from origin.errors import BadRequest, Conflict, Unprocessable

__all__ = [
    "DEFINITION_FIELDS",
    "build_definition",
    "check_layer",
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
    }
)
WEIGHT_TOLERANCE = 1e-6
# What a variation may say (``cache_keys.wire.Variation``); the wire parser is lenient for
# edges' sake, the admin API is strict.
VARIATION_FIELDS = frozenset({"name", "list_variant", "origin", "origin_path", "weights"})


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
    doc: Mapping[str, Any], *, key: str, seed: str, status: str, bucket_version: int, seg_key: bytes
) -> dict[str, Any]:
    """The validated wire form of an experiment from a definition document."""
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
    return out


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
    return (
        other.get("key") != candidate.get("key")
        and other.get("status") == "running"
        and bool(other.get("namespace"))
        and not ended_by_schedule(other, now_ms)
        and _schedules_overlap(candidate, other)
    )


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
