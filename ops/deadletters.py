"""``p13n dlq list|show|requeue|drop``: inspect dead letters, put fixed ones back, drop junk.

A dead letter (format in ``segmenter.schema``) keeps the original bytes: JSON when the
collector rejected it, msgpack when the processor did. ``list`` and ``show`` read the DLQ
stream (``show --raw`` writes every original byte). ``requeue`` and ``drop`` change state, so
they go through the admin API (``/v1/admin/dlq/{id}/requeue``, ``DELETE /v1/admin/dlq/{id}``),
which re-validates with the running origin's ``segmenter.event`` and audits each one:

    valid         appended to the shopper's partition stream, the dead letter deleted
    still invalid refused (409) with the reason; the dead letter stays

One ID, every letter of one ``--reason``, or ``--all`` (paged through ``GET /v1/admin/dlq``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from ops.target import ApiError, OpsError, Target, UsageError

__all__ = ["drop", "list_letters", "requeue", "show"]

# Dead letters per admin API page when requeueing or dropping many.
PAGE = 100  # the admin API's page cap (origin.admin.pipeline.MAX_LIMIT)


# A dead letter's id, as `p13n dlq list` prints it: "1764000000000-0".
_ID_RE = re.compile(r"\d{1,20}-\d{1,20}")


def _check_id(entry_id: str) -> str:
    if not _ID_RE.fullmatch(entry_id):
        raise UsageError(f"{entry_id!r} is not a dead letter ID (like 1764000000000-0)")
    return entry_id


def _s(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")


def _row(eid: Any, f: dict[bytes, bytes]) -> dict[str, Any]:
    ms = int(_s(f.get(b"received_ms")) or 0) or int(_s(eid).split("-")[0])
    return {
        "id": _s(eid),
        "reason": _s(f.get(b"reason")),
        "field": _s(f.get(b"field")),
        "source": _s(f.get(b"source")),
        "received_ms": ms,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000)),
    }


def list_letters(target: Target, count: int) -> dict[str, Any]:
    """Depth and the newest ``count`` dead letters."""
    if count < 1:
        raise UsageError(f"--count {count}: must be at least 1")
    with target.redis() as r:
        depth = int(r.xlen(target.keys.dlq))
        page: Any = r.xrevrange(target.keys.dlq, count=count)
    return {"depth": depth, "entries": [_row(eid, f) for eid, f in page]}


def list_text(doc: dict[str, Any]) -> str:
    lines = [f"dlq depth={doc['depth']}"]
    for e in doc["entries"]:
        lines.append(f"{e['id']}  {e['time']}  {e['source']:<9} {e['field']:<10} {e['reason']}")
    return "\n".join(lines)


def _get(target: Target, entry_id: str) -> dict[bytes, bytes]:
    _check_id(entry_id)
    with target.redis() as r:
        page: Any = r.xrange(target.keys.dlq, entry_id, entry_id, count=1)
    if not page:
        raise OpsError(f"no dead letter {entry_id!r} (see `p13n dlq list`)")
    fields: dict[bytes, bytes] = page[0][1]
    return fields


def show(target: Target, entry_id: str) -> tuple[dict[str, Any], bytes]:
    """One dead letter's fields and its original bytes."""
    f = _get(target, entry_id)
    doc = _row(entry_id, f)
    doc["user"] = _s(f.get(b"user"))
    doc["stream_id"] = _s(f.get(b"stream_id")) or None
    doc["where"] = _s(f.get(b"where")) or None  # "file:line" of an imported line
    raw = f.get(b"raw", b"")
    doc["raw"] = raw.decode("utf-8", errors="backslashreplace")
    doc["raw_bytes"] = len(raw)
    return doc, raw


def show_text(doc: dict[str, Any]) -> str:
    head = [f"{k}: {doc[k]}" for k in ("id", "time", "source", "field", "reason", "user")]
    if doc.get("where"):
        head.append(f"where: {doc['where']}")
    return "\n".join([*head, f"raw ({doc['raw_bytes']} bytes):", doc["raw"]])


def _letters(target: Target) -> Iterator[dict[str, Any]]:
    """Every dead letter, newest first, as the admin API lists them (page by page)."""
    path = f"/v1/admin/dlq?limit={PAGE}"
    while True:
        doc = target.api("GET", path)
        yield from doc["entries"]
        if not doc.get("next"):
            return
        path = f"/v1/admin/dlq?limit={PAGE}&before={doc['next']}"


def _selected(target: Target, entry_id: str | None, everything: bool, reason: str | None
) -> list[str]:  # fmt: skip
    if entry_id is not None:
        return [_check_id(entry_id)]
    if reason is not None:
        return [e["id"] for e in _letters(target) if e["reason"] == reason]
    if not everything:
        raise UsageError("name a dead letter ID, or pass --reason R or --all")
    return [e["id"] for e in _letters(target)]


def _requeue_one(target: Target, entry_id: str) -> dict[str, Any]:
    """``POST /v1/admin/dlq/{id}/requeue``: a 409 is a refusal (still invalid), not a failure."""
    try:
        doc: dict[str, Any] = target.api("POST", f"/v1/admin/dlq/{entry_id}/requeue")
    except ApiError as exc:
        if exc.status != 409:
            raise
        return {"id": entry_id, "requeued": False, "field": exc.problem.get("field", ""),
                "reason": exc.detail}  # fmt: skip
    return doc


def requeue(
    target: Target, entry_id: str | None, everything: bool, reason: str | None = None
) -> list[dict[str, Any]]:
    """Requeue one dead letter (or those of one reason, or all) through the admin API."""
    return [_requeue_one(target, i) for i in _selected(target, entry_id, everything, reason)]


def drop(
    target: Target, entry_id: str | None, everything: bool, reason: str | None = None
) -> list[dict[str, Any]]:
    """Drop one dead letter (or those of one reason, or all) through the admin API, audited."""
    ids = _selected(target, entry_id, everything, reason)
    out: list[dict[str, Any]] = []
    for i in ids:
        out.append(target.api("DELETE", f"/v1/admin/dlq/{i}"))
    return out


def requeue_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        if row["requeued"]:
            lines.append(
                f"{row['id']}: requeued to partition {row['partition']} as {row['stream_id']}"
            )
        else:
            lines.append(f"{row['id']}: REFUSED, still invalid ({row['field']}): {row['reason']}")
    done = sum(1 for r in rows if r["requeued"])
    lines.append(f"requeued {done}, refused {len(rows) - done}")
    return "\n".join(lines)


def drop_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{row['id']}: dropped" for row in rows if row["dropped"]]
    lines.append(f"dropped {sum(1 for r in rows if r['dropped'])}")
    return "\n".join(lines)
