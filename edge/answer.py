"""The shopper-facing answer: body, headers, and the exposure batch.

``Cache-Status`` (RFC 9211, the vocabulary in ``edge.cache_status``) names the tier that
answered. Per-shopper responses are ``private, no-store`` and are the only ones that carry
``Set-Cookie``; nothing here is ever stored, and there is never a ``Vary: Cookie``. Items
keep the labels their list or the origin's rail gave them (``name``, ``image_url`` and
``price``: ``cache_keys.wire.labels``), whatever the rerank did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from cache_keys.experiments import exposure_event_id, utc_day
from cache_keys.wire import (
    ListItem,
    MerchRule,
    RailItem,
    Row,
    apply_rules,
    labels_to_json,
    pool_size,
)
from edge.cache_status import DEFAULT, ORIGIN, cache_status
from edge.plan import Plan
from edge.rerank import Prepared, Ranked, prepare, rerank

__all__ = [
    "Answer",
    "answer_from_list",
    "answer_from_rail",
    "cache_status",
    "exposure_batch",
    "has_exposures",
    "plain_default_answer",
    "response_headers",
]


class Answer(NamedTuple):
    """A rail answer ready to send (a named tuple: one is made per request)."""

    body: str
    tier: str
    cache_status: str
    degraded: bool = False  # stale-if-error or a fallback list: exposures say so


_NO_LABELS: dict[str, Any] = {}


def _body(
    items: Iterable[tuple[str, float, str]],
    variants: dict[str, str],
    degraded: bool,
    labels: Mapping[str, dict[str, Any]] = _NO_LABELS,
) -> str:
    doc: dict[str, Any] = {
        "items": [
            {"item": i, "score": s, "reason": r, **labels.get(i, _NO_LABELS)} for i, s, r in items
        ],
        "variants": variants,
        "degraded": degraded,
    }
    return json.dumps(doc, separators=(",", ":"))


_REASONS: dict[str, str] = {}  # reason -> ',"reason":<json>' (a handful of reasons)


def _fragment(item: str, labels: dict[str, Any] | None) -> tuple[str, str]:
    """An item's row JSON before its score and after its reason (its labels), as
    ``json.dumps`` of ``{"item", "score", "reason", **labels}`` writes them."""
    tail = json.dumps(labels, separators=(",", ":"))[1:-1] if labels else ""
    return '{"item":' + json.dumps(item) + ',"score":', ("," + tail if tail else "") + "}"


def _ranked_body(ranked: Sequence[Ranked], prep: Prepared, variants: dict[str, str],
                 degraded: bool, reason_override: str | None) -> str:  # fmt: skip
    """``_body`` of reranked rows of a prepared list, from each item's JSON fragments: the
    same text, without a dict per row for ``json.dumps`` to walk."""
    fragments, labels = prep.fragments, prep.labels
    rows = []
    for name, score, reason in ranked:
        frag = fragments.get(name)
        if frag is None:
            frag = fragments[name] = _fragment(name, labels.get(name))
        num = repr(score) if type(score) is float else "n"
        if "n" in num:  # nan, inf or not a float: json's own spelling
            num = json.dumps(score)
        said = reason_override or reason
        why = _REASONS.get(said)
        if why is None:
            why = _REASONS[said] = ',"reason":' + json.dumps(said)
        rows.append(frag[0] + num + why + frag[1])
    return (
        '{"items":[' + ",".join(rows) + '],"variants":'
        + json.dumps(variants, separators=(",", ":"))
        + (',"degraded":true}' if degraded else ',"degraded":false}')
    )  # fmt: skip


def answer_from_list(
    plan: Plan,
    items: Sequence[ListItem],
    mask: frozenset[str],
    *,
    tier: str,
    status: str,
    degraded: bool = False,
    rules: Sequence[MerchRule] = (),
) -> Answer:
    """Rerank ``items`` for this request, then apply the live merchandising ``rules``;
    ``degraded`` for stale-if-error and default lists."""
    ranked: list[Ranked] = rerank(
        items,
        plan.identity.context,
        k=pool_size(plan.k, rules),
        category_cap=plan.policy.category_cap,
        weights=plan.weights,
        mask=mask,
    )
    reason_override = DEFAULT if tier == DEFAULT else None
    prep = prepare(items)
    labels = prep.labels
    if not rules:
        body = _ranked_body(ranked, prep, plan.variants, degraded, reason_override)
        return Answer(body, tier, status, degraded)
    category = {it.item: it.category for it in items}
    ctx = plan.identity.context
    excluded = mask | frozenset(ctx.cart) if ctx is not None else mask
    merch = apply_rules(
        [
            Row(r.item, r.score, reason_override or r.reason, category.get(r.item, ""))
            for r in ranked
        ],
        rules,
        k=plan.k,
        excluded=excluded,
    )
    body = _body((r[:3] for r in merch), plan.variants, degraded, labels)
    return Answer(body, tier, status, degraded)


def answer_from_rail(
    plan: Plan, items: Sequence[RailItem], mask: frozenset[str], status: str
) -> Answer:
    """The origin's per-shopper answer, masked items removed, cut to ``k``."""
    kept = [i for i in items if i.item not in mask][: plan.k]
    labels = {i.item: labels_to_json(i.name, i.image_url, i.price) for i in kept}
    rows = [(i.item, i.score, i.reason) for i in kept]
    return Answer(_body(rows, plan.variants, False, labels), ORIGIN, status)


def plain_default_answer(items: Sequence[ListItem], k: int, status: str) -> Answer:
    """The default list as it is, cut to ``k``, with no variant and no rerank: the answer of
    last resort when the decision core itself failed (nothing of it is trusted)."""
    rows = ((i.item, i.score, DEFAULT) for i in items[:k])
    return Answer(_body(rows, {}, True, prepare(items).labels), DEFAULT, status, True)


def response_headers(plan: Plan | None, answer: Answer) -> list[tuple[str, str]]:
    """Headers of the per-shopper response (a list: ``Set-Cookie`` may repeat); no cookies
    without a plan."""
    headers = [
        ("content-type", "application/json"),
        ("cache-control", "private, no-store"),
        ("cache-status", answer.cache_status),
    ]
    if plan is not None:
        headers += [("set-cookie", c) for c in plan.set_cookies]
    return headers


def has_exposures(plan: Plan) -> bool:
    """Whether ``exposure_batch`` has anything to log for this plan (checked before any
    background work is started for it)."""
    return plan.identity.shopper_id is not None and bool(plan.assignments)


def exposure_batch(
    plan: Plan, now_ms: int, traceparent: str = "", *, degraded: bool = False
) -> dict[str, Any] | None:
    """One Event v1 batch with an exposure per experiment; None when there is nothing to log.
    A ``degraded`` answer adds, per exposure, an Event v4 marker with ``degraded: true`` and
    its own daily id (``<exposure id>-d``) for the guardrails.

    Event ids repeat for the same shopper, experiment and UTC day, so the collector and the
    processor count each exposure once a day however often the edge logs it. Opted-out
    shoppers have no id and no assignments, so they never produce a batch.
    """
    shopper = plan.identity.shopper_id
    if shopper is None or not has_exposures(plan):
        return None
    session = f"edge-{utc_day(now_ms)}"
    events: list[dict[str, Any]] = [
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
    if degraded:  # plus a marker per exposure, its own daily id: not deduped away by the
        # day's ordinary exposure, counted once per shopper-day by the guardrails
        events += [{**ev, "v": 4, "event_id": f"{ev['event_id']}-d", "degraded": True}
                   for ev in events]  # fmt: skip
    if plan.device == "bot":  # still served, never counted: results exclude bot exposures
        for ev in events:
            ev["bot"] = True
    return {"events": events}
