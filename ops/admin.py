"""``p13n purge`` and ``p13n experiments``: the admin API from the command line.

purge --sku AB-1 --hard --wait   POST /v1/admin/invalidations, then poll
                                 GET /v1/admin/invalidations/{id} until every live edge
                                 reports the new generations (or the timeout)
experiments list                 GET /v1/admin/experiments
experiments results KEY          GET /v1/admin/experiments/{KEY}/results
(``ops.experiments`` holds the command and its other actions)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ops.helptext import plural
from ops.target import OpsError, Target, UsageError

__all__ = [
    "experiments",
    "lift_text",
    "purge",
    "purge_tags",
    "results",
    "srm_text",
    "wait_applied",
]

POLL_INTERVAL_S = 0.25


def purge_tags(
    skus: list[str], cats: list[str], segs: list[str], routes: list[str], everything: bool
) -> list[str]:
    """The invalidation's tags from the command's options."""
    tags = [f"sku:{v}" for v in skus] + [f"cat:{v}" for v in cats]
    tags += [f"seg:{v}" for v in segs] + [f"route:{v}" for v in routes]
    if everything:
        tags.append("all")
    if not tags:
        raise UsageError("say what to purge: --sku, --cat, --seg, --route or --all")
    return tags


def purge(target: Target, tags: list[str], mode: str, reason: str) -> dict[str, Any]:
    """Create the invalidation; its record."""
    doc: dict[str, Any] = target.api(
        "POST", "/v1/admin/invalidations", {"tags": tags, "mode": mode, "reason": reason}
    )
    return doc


def wait_applied(
    target: Target,
    inv_id: str,
    timeout_s: float,
    progress: Callable[[dict[str, Any]], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the invalidation until every live edge applied it; ``OpsError`` on timeout."""
    deadline = clock() + timeout_s
    last: tuple[int, int] | None = None
    while True:
        doc: dict[str, Any] = target.api("GET", f"/v1/admin/invalidations/{inv_id}")
        edges = doc["edges"]
        seen = (edges["applied"], edges["live"])
        if seen != last:
            progress(doc)
            last = seen
        if doc["state"] == "applied":
            return doc
        if clock() >= deadline:
            pending = ", ".join(edges["pending"]) or "no live edges"
            raise OpsError(
                f"{inv_id} not applied within {timeout_s:g} s: {doc['state']} "
                f"({edges['applied']}/{edges['live']} edges; pending: {pending})"
            )
        sleep(POLL_INTERVAL_S)


def progress_line(doc: dict[str, Any]) -> str:
    e = doc["edges"]
    pending = f" (waiting for {', '.join(e['pending'])})" if e["pending"] else ""
    return f"{doc['id']}: {doc['state']}, applied by {e['applied']}/{e['live']} edges{pending}"


def purge_text(doc: dict[str, Any]) -> str:
    cf = doc.get("cloudflare", {}).get("status", "-")
    return (
        f"{doc['id']}: {doc['mode']} purge of {', '.join(doc['tags'])}; pushed to "
        f"{plural(doc.get('pushed_to_subscribers'), 'subscriber')}; cloudflare {cf}"
    )


def experiments(target: Target) -> list[dict[str, Any]]:
    """Every experiment."""
    docs: list[dict[str, Any]] = target.api("GET", "/v1/admin/experiments")["experiments"]
    return docs


def experiments_text(docs: list[dict[str, Any]]) -> str:
    if not docs:
        return "no experiments"
    lines = [f"{'key':<24} {'status':<9} {'coverage':>8}  variants (weights)"]
    for d in docs:
        variants = ", ".join(
            f"{v['name']} ({w:g})" for v, w in zip(d["variations"], d["weights"], strict=False)
        )
        lines.append(f"{d['key']:<24} {d['status']:<9} {d['coverage']:>8g}  {variants}")
    return "\n".join(lines)


def results(target: Target, key: str) -> dict[str, Any]:
    """One experiment's results."""
    doc: dict[str, Any] = target.api("GET", f"/v1/admin/experiments/{key}/results")
    return doc


def lift_text(row: dict[str, Any]) -> str:
    """``+12.00% [-3.10%, +29.40%] vs control``; ``(control)`` for the control row."""
    lift = row.get("lift")
    if not lift:
        return "(control)" if "lift" not in row else "-"
    lo, hi = lift["ci95"]
    return f"{lift['relative']:+.2%} [{lo:+.2%}, {hi:+.2%}] vs {lift['vs']}"


def srm_text(srm: dict[str, Any]) -> str:
    """The sample ratio check in one line."""
    p = "-" if srm.get("p_value") is None else f"{srm['p_value']:.4g}"
    flag = "SAMPLE RATIO MISMATCH" if srm.get("mismatch") else "no sample ratio mismatch"
    return f"{flag} (p = {p}, threshold {srm.get('threshold')})"
