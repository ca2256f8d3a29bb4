"""``p13n dlq list|show|requeue``: inspect dead letters and put fixed ones back on the bus.

A dead letter (format in ``segmenter.schema``) keeps the original bytes: JSON when the
collector rejected it, msgpack when the processor did. ``requeue`` re-validates those bytes
with the running build's ``segmenter.event`` (after a schema fix or a consumer fix):

    valid         XADD to the shopper's partition stream, then XDEL the dead letter
    still invalid refused, with the reason; the dead letter stays

The two writes touch different hash tags (``{p:<n>}`` and ``{dlq}``), so they cannot be one
transaction on a cluster: XADD goes first, and if the XDEL is lost a second requeue adds the
event again, which the processor drops as a duplicate by ``event_id``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from ops.target import OpsError, Target, UsageError
from segmenter import event
from segmenter.event import Event, Rejection
from segmenter.schema import STREAM_MAXLEN, partition_of

__all__ = ["list_letters", "requeue", "revalidate", "show"]


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
    raw = f.get(b"raw", b"")
    doc["raw"] = raw.decode("utf-8", errors="backslashreplace")
    doc["raw_bytes"] = len(raw)
    return doc, raw


def show_text(doc: dict[str, Any]) -> str:
    head = [f"{k}: {doc[k]}" for k in ("id", "time", "source", "field", "reason", "user")]
    return "\n".join([*head, f"raw ({doc['raw_bytes']} bytes):", doc["raw"]])


def revalidate(raw: bytes, source: str) -> Event | Rejection:
    """The dead letter's bytes checked again: msgpack from the processor, else JSON."""
    if source == "processor":
        return event.decode(raw)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("$", f"not JSON: {exc}")
    return event.validate(doc)


def _requeue_one(target: Target, entry_id: str, f: dict[bytes, bytes]) -> dict[str, Any]:
    checked = revalidate(f.get(b"raw", b""), _s(f.get(b"source")))
    if isinstance(checked, Rejection):
        return {"id": entry_id, "requeued": False, "field": checked.field,
                "reason": checked.reason}  # fmt: skip
    partition = partition_of(checked.user, target.partitions)
    with target.redis() as r:
        stream_id = r.xadd(
            target.keys.stream(partition),
            {"e": event.encode(checked)},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        r.xdel(target.keys.dlq, entry_id)
    return {"id": entry_id, "requeued": True, "partition": partition,
            "stream_id": _s(stream_id), "event_id": checked.event_id}  # fmt: skip


def requeue(target: Target, entry_id: str | None, everything: bool) -> list[dict[str, Any]]:
    """Requeue one dead letter (or all of them); one result row each."""
    if entry_id is not None:
        return [_requeue_one(target, entry_id, _get(target, entry_id))]
    if not everything:
        raise UsageError("name a dead letter ID or pass --all")
    out, start = [], "-"
    while True:
        with target.redis() as r:
            page: Any = r.xrange(target.keys.dlq, start, "+", count=500)
        for eid, f in page:
            out.append(_requeue_one(target, _s(eid), f))
        if len(page) < 500:
            return out
        start = "(" + _s(page[-1][0])


def requeue_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        if row["requeued"]:
            lines.append(f"{row['id']}: requeued to partition {row['partition']} "
                         f"as {row['stream_id']} (event {row['event_id']})")  # fmt: skip
        else:
            lines.append(f"{row['id']}: REFUSED, still invalid ({row['field']}): {row['reason']}")
    done = sum(1 for r in rows if r["requeued"])
    lines.append(f"requeued {done}, refused {len(rows) - done}")
    return "\n".join(lines)
