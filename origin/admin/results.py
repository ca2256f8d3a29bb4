"""Experiment results (experimenter role): per variant exposures, conversions, revenue, lift.

Counters are the segmenter's, per partition (``Keys.experiment_counts``: ``x:<variant>``
distinct exposed shoppers, ``c:<variant>`` distinct converters, ``r:<variant>`` revenue,
``o:<variant>`` orders, the per-shopper moments ``origin.admin.metrics`` reads, and daily
``d:<day>:x|c:<variant>``; bot traffic is not counted), merged here. When a running
experiment is re-seeded its results restart: counts at that moment are stored in the
experiment as ``results_baseline`` and subtracted (never clamped: a negative difference
is reported as inconsistent). Sample-ratio mismatch tests distinct exposed shoppers against
the weights (chi-square, or exact for small expected counts), flagged below p = 0.001.

That restart is only a subtraction, and the document says so (``reseeded_at_ms`` and
``caveat``): events carry no bucket version and a shopper counts as exposed once per
experiment for life, so a shopper exposed before the re-seed and re-assigned by it is not
counted as exposed again, and their later conversions and revenue still go to their first
variant. After a re-seed, read the figures as indicative; a new experiment key gives a clean
read.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys.wire._check import SLUG_RE
from origin.admin.base import ADMIN_BUDGET_S, now_ms
from origin.admin.guardrails import guardrails, read_origin_counts
from origin.admin.inference import compare, planning
from origin.admin.metrics import METRICS, Arm, Metric
from origin.admin.stats import EXACT_BELOW, holm, lift_ci, srm_p_value
from origin.admin.timeline import timeline
from origin.auth import require
from origin.errors import BadRequest, NotFound
from origin.state import AppState, get_state

__all__ = [
    "ALPHA", "RESEED_CAVEAT", "SRM_THRESHOLD", "read_counts", "routes", "summarize",
]  # fmt: skip

SRM_THRESHOLD = 0.001
ALPHA = 0.05  # two-sided, for every interval and test on the page


async def read_counts(state: AppState, key: str) -> dict[str, float]:
    """The experiment's counters merged over partitions (one round trip)."""

    def build(p: Any) -> None:
        for n in range(state.settings.partitions):
            p.hgetall(state.keys.experiment_counts(n, key))

    merged: dict[str, float] = {}
    for reply in await state.store.pipeline("results", build, budget_s=ADMIN_BUDGET_S):
        for field, value in reply.items():
            try:
                v = float(value)
            except ValueError:
                continue
            merged[field.decode()] = merged.get(field.decode(), 0.0) + v
    return merged


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b > 0 else None


def _display(metric: Metric, value: float | None) -> float | None:
    """Currency metrics are kept in minor units (cents): shown in the major unit."""
    if value is None:
        return None
    return round(value / 100, 4) if metric.unit == "currency" else round(value, 6)


def _row(name: str, arm: Arm) -> dict[str, Any]:
    r = arm.revenue / 100  # the processor keeps revenue in integer cents, so sums are exact
    est = {k: m.estimate(arm) for k, m in METRICS.items()}
    return {
        "variant": name,
        "exposures": arm.n,
        "conversions": arm.conversions,
        "conversion_rate": _ratio(arm.conversions, arm.n),
        "revenue": round(r, 2),
        "orders": arm.orders,
        "revenue_per_exposed": _ratio(r, arm.n),
        "average_order_value": _ratio(r, arm.orders),
        "carts": arm.carts,
        "add_to_cart_rate": _ratio(arm.carts, arm.n),
        "revenue_capped": round(arm.rev / 100, 2),
        "metrics": {k: _display(METRICS[k], e[0] if e else None) for k, e in est.items()},
    }


def _shown(metric: Metric, cmp: dict[str, Any]) -> dict[str, Any]:
    f = 0.01 if metric.unit == "currency" else 1.0

    def pair(v: list[float] | None) -> list[float] | None:
        return None if v is None else [round(x * f, 8) for x in v]

    return {
        **cmp,
        "difference": round(cmp["difference"] * f, 8),
        "ci": pair(cmp["ci"]),
        "ci_adjusted": pair(cmp["ci_adjusted"]),
        "relative": None if cmp["relative"] is None else round(cmp["relative"], 6),
        "relative_ci": None
        if cmp["relative_ci"] is None
        else [round(x, 6) for x in cmp["relative_ci"]],
        "sequential": {**cmp["sequential"], "ci": pair(cmp["sequential"]["ci"])},
    }


def _compare_all(rows: list[dict[str, Any]], arms: list[Arm]) -> None:
    """Each treatment against control on every metric; Holm across the treatments."""
    family = len(arms) - 1
    for key, metric in METRICS.items():
        found = [compare(metric, t, arms[0], ALPHA, family) for t in arms[1:]]
        ps = [c["p_value"] for c in found if c is not None]
        adjusted = iter(holm(ps))
        for row, t, cmp in zip(rows[1:], arms[1:], found, strict=True):
            out = row.setdefault("comparisons", {})
            if cmp is None:
                out[key] = None
                continue
            cmp["p_adjusted"] = next(adjusted)
            cmp["significant"] = cmp["p_adjusted"] < ALPHA
            cmp.update(planning(metric, arms[0], t.n, ALPHA, family))
            out[key] = _shown(metric, cmp)


def _lift(t: Arm, c: Arm, control: str) -> dict[str, Any] | None:
    """The conversion lift as the document always had it: None while it is undefined
    (control without conversions; the comparisons still give the difference)."""
    ci = lift_ci(t.conversions, t.n, c.conversions, c.n)
    if ci is None or ci[0] is None:
        return None
    return {"vs": control, "relative": round(ci[0], 6), "ci95": [round(ci[1], 6), round(ci[2], 6)]}


def _srm(exp: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    observed = [r["exposures"] for r in rows]
    weights = exp["weights"]
    stray = {r["variant"]: r["exposures"] for r, w in zip(rows, weights, strict=True)
             if w <= 0 and r["exposures"] > 0}  # fmt: skip
    p = srm_p_value(observed, weights) if min(observed, default=0) >= 0 else None
    active = [o * 1.0 for o, w in zip(observed, weights, strict=True) if w > 0]
    wsum = sum(w for w in weights if w > 0)
    small = bool(active) and min(sum(active) * w / wsum for w in weights if w > 0) < EXACT_BELOW
    return {
        "p_value": None if p is None else round(p, 8),
        "mismatch": bool(stray) or (p is not None and p < SRM_THRESHOLD),
        "threshold": SRM_THRESHOLD,
        "method": "exact binomial" if small else "chi-square",
        "zero_weight_exposures": stray,
    }


def _harm(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per treatment, the metrics its always-valid interval puts below control: harm that
    is safe to act on at any look (every metric here is better higher)."""
    out: dict[str, list[str]] = {}
    for row in rows[1:]:
        bad = [k for k, c in (row.get("comparisons") or {}).items()
               if c is not None and c["sequential"]["ci"][1] < 0]  # fmt: skip
        if bad:
            out[row["variant"]] = bad
    return out


def summarize(
    exp: dict[str, Any],
    counts: dict[str, float],
    currency: str = "USD",
    origin: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The results document of one experiment (pure); ``origin``: its guardrail counters."""
    base = exp.get("results_baseline") or {}
    names = [v["name"] for v in exp["variations"]]
    # Subtracted, never clamped: a negative count is reported, not hidden.
    since = {k: counts.get(k, 0.0) - float(base.get(k, 0)) for k in {*counts, *base}}
    arms = [Arm.of(since, name) for name in names]
    problems = [p for name, arm in zip(names, arms, strict=True) for p in arm.problems(name)]
    rows = [_row(name, arm) for name, arm in zip(names, arms, strict=True)]
    for row, arm in zip(rows[1:], arms[1:], strict=True):
        row["lift"] = None if problems else _lift(arm, arms[0], names[0])
    if not problems and len(arms) > 1:
        _compare_all(rows, arms)
    caps = sorted(int(k[2:]) for k in counts if k.startswith("k:") and k[2:].isdigit())
    reseeded = _reseeded_at(exp)
    return {
        "experiment": exp["key"],
        "bucket_version": exp["bucket_version"],
        "results_from_ms": exp.get("results_from_ms"),
        "variants": rows,
        "srm": _srm(exp, rows),
        "bots_excluded": True,
        "reseeded_at_ms": reseeded,
        "caveat": None if reseeded is None else RESEED_CAVEAT,
        "inconsistent": problems,
        "currency": currency,
        "alpha": ALPHA,
        "correction": {
            "method": "holm" if len(arms) > 2 else "none",
            "treatments": max(0, len(arms) - 1),
        },
        "metrics": [
            {
                "key": m.key,
                "name": m.name,
                "definition": m.definition,
                "unit": m.unit,
                "kind": m.kind,
            }
            for m in METRICS.values()
        ],
        "revenue_cap": {
            "amount": round(caps[-1] / 100, 2) if caps else None,
            "changed_during_experiment": len(caps) > 1,
        },
        "timeline": [] if problems else timeline(since, names, ALPHA),
        "harm": _harm(rows),
        "guardrails": guardrails(names, since, origin or {}, ALPHA),
    }


RESEED_CAVEAT = (
    "this experiment was re-seeded (its bucket version bumped): results since then are the "
    "counters minus their values at the re-seed. Events carry no bucket version and a shopper "
    "counts as exposed once per experiment for life, so shoppers exposed before the re-seed "
    "and re-assigned by it keep their first exposure: they are not counted as exposed again "
    "and their later conversions and revenue go to their first variant. Treat these figures "
    "as indicative; start a new experiment key for a clean read."
)


def _reseeded_at(exp: dict[str, Any]) -> int | None:
    """When the experiment was last re-seeded (records from before ``reseeded_at_ms`` was
    kept fall back to when their results restarted)."""
    if not exp.get("bucket_version"):
        return None
    at = exp.get("reseeded_at_ms") or exp.get("results_from_ms")
    return int(at) if at is not None else None


async def results(request: Request) -> Response:
    """``GET /v1/admin/experiments/{key}/results``."""
    state = get_state(request)
    require(request, state.settings, ("experimenter",))
    key = str(request.path_params["key"])
    if not SLUG_RE.fullmatch(key):
        raise BadRequest("experiment key must be 1-40 characters of a-z, 0-9 and '-'", field="key")
    raw = await state.store.run("experiment", state.store.client.hget(state.keys.experiments, key))
    if raw is None:
        raise NotFound(f"no experiment {key!r}", field="key")
    counts, origin = await read_counts(state, key), await read_origin_counts(state, key)
    doc = summarize(orjson.loads(raw), counts, state.settings.currency, origin)
    doc["as_of_ms"] = now_ms(state)
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def routes() -> list[BaseRoute]:
    """Results route."""
    return [Route("/v1/admin/experiments/{key}/results", results, methods=["GET"])]
