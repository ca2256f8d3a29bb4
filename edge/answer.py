"""The shopper-facing answer: body, headers, ``Cache-Status``, and the exposure batch.

``Cache-Status`` (RFC 9211) names the tier that answered in ``detail``:

    hit      p13n-edge; hit; ttl=42; detail=hit
    stale    p13n-edge; hit; ttl=-5; detail=stale-while-revalidate   (or stale-if-error)
    miss     p13n-edge; fwd=miss; fwd-status=200; stored; detail=miss
    origin   p13n-edge; fwd=bypass; fwd-status=200; detail=origin     (fully personal route)
    default  p13n-edge; fwd=miss; detail=default                      (origin failed, no stale)

Per-shopper responses are ``private, no-store`` and are the only ones that carry
``Set-Cookie``; nothing here is ever stored, and there is never a ``Vary: Cookie``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from cache_keys.experiments import exposure_event_id, utc_day
from cache_keys.wire import ListItem, RailItem
from edge.plan import Plan
from edge.rerank import Ranked, rerank

__all__ = [
    "Answer",
    "answer_from_list",
    "answer_from_rail",
    "cache_status",
    "exposure_batch",
    "response_headers",
]

TIERS = frozenset({"hit", "stale", "miss", "origin", "default"})


class Answer(NamedTuple):
    """A rail answer ready to send (a named tuple: one is made per request)."""

    body: str
    tier: str
    cache_status: str


@functools.lru_cache(maxsize=1024)  # a handful of tiers x ttls: made once, not per request
def cache_status(
    name: str,
    tier: str,
    *,
    ttl_s: int | None = None,
    fwd_status: int | None = None,
    detail: str | None = None,
) -> str:
    """One RFC 9211 ``Cache-Status`` member for this edge's answer."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    parts = [name]
    if tier in ("hit", "stale"):
        parts.append("hit")
        if ttl_s is not None:
            parts.append(f"ttl={ttl_s}")
    else:
        parts.append("fwd=bypass" if tier == "origin" else "fwd=miss")
        if fwd_status is not None:
            parts.append(f"fwd-status={fwd_status}")
        if tier == "miss":
            parts.append("stored")
    parts.append(f"detail={detail or tier}")
    return "; ".join(parts)


def _body(items: Iterable[tuple[str, float, str]], plan: Plan, degraded: bool) -> str:
    doc: dict[str, Any] = {
        "items": [{"item": i, "score": s, "reason": r} for i, s, r in items],
        "variants": plan.variants,
        "degraded": degraded,
    }
    return json.dumps(doc, separators=(",", ":"))


def answer_from_list(
    plan: Plan,
    items: Sequence[ListItem],
    mask: frozenset[str],
    *,
    tier: str,
    status: str,
    degraded: bool = False,
) -> Answer:
    """Rerank ``items`` for this request; ``degraded`` for stale-if-error and default lists."""
    ranked: list[Ranked] = rerank(
        items,
        plan.identity.context,
        k=plan.k,
        category_cap=plan.policy.category_cap,
        weights=plan.weights,
        mask=mask,
    )
    reason_override = "default" if tier == "default" else None
    rows = ((r.item, r.score, reason_override or r.reason) for r in ranked)
    return Answer(_body(rows, plan, degraded), tier, status)


def answer_from_rail(
    plan: Plan, items: Sequence[RailItem], mask: frozenset[str], status: str
) -> Answer:
    """The origin's per-shopper answer, masked items removed, cut to ``k``."""
    rows = [(i.item, i.score, i.reason) for i in items if i.item not in mask][: plan.k]
    return Answer(_body(rows, plan, False), "origin", status)


def response_headers(plan: Plan, answer: Answer) -> list[tuple[str, str]]:
    """Headers of the per-shopper response (a list: ``Set-Cookie`` may repeat)."""
    headers = [
        ("content-type", "application/json"),
        ("cache-control", "private, no-store"),
        ("cache-status", answer.cache_status),
    ]
    headers += [("set-cookie", c) for c in plan.set_cookies]
    return headers


def exposure_batch(plan: Plan, now_ms: int, traceparent: str = "") -> dict[str, Any] | None:
    """One Event v1 batch with an exposure per experiment; None when there is nothing to log.

    Event ids repeat for the same shopper, experiment and UTC day, so the collector and the
    processor count each exposure once a day however often the edge logs it. Opted-out
    shoppers have no id and no assignments, so they never produce a batch.
    """
    shopper = plan.identity.shopper_id
    if shopper is None or not plan.assignments:
        return None
    session = f"edge-{utc_day(now_ms)}"
    events = [
        {
            "v": 1,
            "event_id": exposure_event_id(shopper, a.experiment, now_ms),
            "type": "exposure",
            "user": shopper,
            "ts": now_ms,
            "session": session,
            "experiment": a.experiment,
            "variant": a.variation.name,
        }
        for a in plan.assignments
    ]
    if traceparent:
        for ev in events:
            ev["traceparent"] = traceparent
    if plan.device == "bot":  # still served, never counted: results exclude bot exposures
        for ev in events:
            ev["bot"] = True
    return {"events": events}
