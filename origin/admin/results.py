"""Experiment results (experimenter role): per variant exposures, conversions, revenue, lift.

Counters are the segmenter's, per partition (``Keys.experiment_counts``: ``x:<variant>``
distinct exposed shoppers, ``c:<variant>`` distinct converters, ``r:<variant>`` revenue,
``o:<variant>`` orders; bot traffic is not counted), merged here. When a running
experiment is re-seeded its results restart: counts at that moment are stored in the
experiment as ``results_baseline`` and subtracted. Sample-ratio mismatch is a chi-square
test of distinct exposed shoppers against the weights, flagged below p = 0.001.

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
from origin.admin.stats import lift_ci, srm_p_value
from origin.auth import require
from origin.errors import BadRequest, NotFound
from origin.state import AppState, get_state

__all__ = ["RESEED_CAVEAT", "SRM_THRESHOLD", "read_counts", "routes", "summarize"]

SRM_THRESHOLD = 0.001


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


def summarize(exp: dict[str, Any], counts: dict[str, float]) -> dict[str, Any]:
    """The results document of one experiment (pure)."""
    base = exp.get("results_baseline") or {}
    names = [v["name"] for v in exp["variations"]]

    def get(kind: str, name: str) -> float:
        return max(0.0, counts.get(f"{kind}:{name}", 0.0) - float(base.get(f"{kind}:{name}", 0)))

    rows = []
    for name in names:
        x, c, cents, o = (get(kind, name) for kind in ("x", "c", "r", "o"))
        r = cents / 100  # the processor keeps revenue in integer cents, so sums are exact
        rows.append(
            {
                "variant": name,
                "exposures": int(x),
                "conversions": int(c),
                "conversion_rate": _ratio(c, x),
                "revenue": round(r, 2),
                "orders": int(o),
                "revenue_per_exposed": _ratio(r, x),
                "average_order_value": _ratio(r, o),
            }
        )
    control = rows[0]
    for row in rows[1:]:
        ci = lift_ci(
            row["conversions"], row["exposures"], control["conversions"], control["exposures"]
        )
        row["lift"] = (
            None
            if ci is None
            else {
                "vs": control["variant"],
                "relative": round(ci[0], 6),
                "ci95": [round(ci[1], 6), round(ci[2], 6)],
            }
        )
    p = srm_p_value([r["exposures"] for r in rows], exp["weights"])
    reseeded = _reseeded_at(exp)
    return {
        "experiment": exp["key"],
        "bucket_version": exp["bucket_version"],
        "results_from_ms": exp.get("results_from_ms"),
        "variants": rows,
        "srm": {
            "p_value": None if p is None else round(p, 8),
            "mismatch": p is not None and p < SRM_THRESHOLD,
            "threshold": SRM_THRESHOLD,
        },
        "bots_excluded": True,
        "reseeded_at_ms": reseeded,
        "caveat": None if reseeded is None else RESEED_CAVEAT,
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
    doc = summarize(orjson.loads(raw), await read_counts(state, key))
    doc["as_of_ms"] = now_ms(state)
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def routes() -> list[BaseRoute]:
    """Results route."""
    return [Route("/v1/admin/experiments/{key}/results", results, methods=["GET"])]
