"""Experiment guardrails per arm, each treatment against control, and the optional auto-stop.

Three rates, each lower is better:

    degraded  exposed shopper-days (exposure events: one per shopper, experiment and UTC day)
              with a degraded answer at the edge (stale-if-error or a fallback list: its
              marker event, ``degraded: true``): the segmenter's ``g:``/``e:``
    slow      origin answers slower than ``P13N_GUARDRAIL_LATENCY_MS`` (default: the route's
              origin budget): ``s:``/``n:`` of ``Keys.guardrails``
    error     origin answers degraded by an error or Redis being down: ``f:``/``n:``

A treatment is *worse* on a guardrail when the always-valid confidence sequence
(``origin.admin.inference.confidence_sequence``) of its rate minus control's lies entirely
above 0: safe to act on at any look. Its level is alpha / (treatments x guardrails), so an
A/A experiment is wrongly called worse on any guardrail with probability at most alpha
however often it is checked (Bonferroni over the arms and the three guardrails). An
experiment created with ``"auto_stop": true`` is stopped by the origin when one is (checked
every ``P13N_GUARDRAIL_CHECK_S`` by one origin process, claimed with ``SET NX PX``); the audit
entry ``experiment.auto_stop`` and the experiment's ``stopped_by_guardrail`` state which arm,
which guardrail and the figures.
"""

from __future__ import annotations

from typing import Any

from origin.admin.base import ADMIN_BUDGET_S
from origin.admin.inference import confidence_sequence
from origin.admin.stats import newcombe_diff, z_of
from origin.state import AppState

__all__ = ["GUARDRAILS", "guardrails", "read_origin_counts", "worst"]

# guardrail -> (numerator field, denominator field, source)
GUARDRAILS: dict[str, tuple[str, str, str]] = {
    "degraded": ("g", "e", "edge"),
    "slow": ("s", "n", "origin"),
    "error": ("f", "n", "origin"),
}


async def read_origin_counts(state: AppState, key: str) -> dict[str, float]:
    """The origin's guardrail counters of experiment ``key``."""
    raw = await state.store.run(
        "guardrails", state.store.client.hgetall(state.keys.guardrails(key)),
        budget_s=ADMIN_BUDGET_S,
    )  # fmt: skip
    return {k.decode(): float(v) for k, v in raw.items()}


def _rate(k: float, n: float) -> float | None:
    return round(k / n, 6) if n > 0 else None


def _compare(t: tuple[int, int], c: tuple[int, int], alpha: float, family: int) -> dict[str, Any]:
    """Treatment rate minus control rate, each ``(events, of)``: fixed-horizon (Newcombe) and
    always-valid."""
    (k_t, n_t), (k_c, n_c) = t, c
    d, lo, hi = newcombe_diff(k_t, n_t, k_c, n_c, z_of(alpha))
    # (k + 1) / (n + 2), as for conversion: zero events in both arms cannot look certain
    a_t, a_c = (k_t + 1) / (n_t + 2), (k_c + 1) / (n_c + 2)
    var = a_t * (1 - a_t) / n_t + a_c * (1 - a_c) / n_c
    seq = confidence_sequence(d, var, n_t * n_c / (n_t + n_c), alpha / family)
    return {
        "difference": round(d, 8),
        "ci": [round(lo, 8), round(hi, 8)],
        "sequential_ci": [round(seq[0], 8), round(seq[1], 8)],
        "worse": seq[0] > 0,  # every guardrail is better lower
    }


def guardrails(
    names: list[str], edge: dict[str, float], origin: dict[str, float], alpha: float
) -> dict[str, Any]:
    """The guardrails section of the results document (pure)."""
    src = {"edge": edge, "origin": origin}
    family = max(1, len(names) - 1) * len(GUARDRAILS)
    arms: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        arm: dict[str, Any] = {"variant": name}
        cmps: dict[str, Any] = {}
        for g, (num, den, where) in GUARDRAILS.items():
            k, n = int(src[where].get(f"{num}:{name}", 0)), int(src[where].get(f"{den}:{name}", 0))
            arm[g] = {"events": k, "of": n, "rate": _rate(k, n)}
            if i:
                kc = int(src[where].get(f"{num}:{names[0]}", 0))
                nc = int(src[where].get(f"{den}:{names[0]}", 0))
                ok = n > 0 and nc > 0 and 0 <= k <= n and 0 <= kc <= nc
                cmps[g] = _compare((k, n), (kc, nc), alpha, family) if ok else None
        if i:
            arm["vs_control"] = cmps
        arms.append(arm)
    worse = {a["variant"]: [g for g, c in a["vs_control"].items() if c and c["worse"]]
             for a in arms[1:]}  # fmt: skip
    return {"arms": arms, "worse": {v: gs for v, gs in worse.items() if gs}}


def worst(doc: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """The first (treatment, guardrail, figures) the guardrails found worse, if any."""
    for arm in doc["arms"][1:]:
        for g, cmp in arm["vs_control"].items():
            if cmp and cmp["worse"]:
                control = doc["arms"][0][g]
                return arm["variant"], g, {"treatment": arm[g], "control": control, **cmp}
    return None
