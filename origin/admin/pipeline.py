"""Pipeline health for operators (admin role): partition lag, dead letters, edge hit ratio.

- ``GET /v1/admin/pipeline?window_s=900``: per partition the stream length, entries not yet
  delivered (``lag``) and delivered but unacknowledged (``pending``), the applied offset and
  lease owner; the DLQ depth; live edges; and the edges' hit ratio and freshness per time
  bucket over the window, from the heartbeat history (``Keys.edge_history``).
- ``GET /v1/admin/dlq?limit=&before=``: dead letters, newest first, each with a bounded
  preview of its original (the first ``PREVIEW_BYTES`` as text, never the whole original
  decoded and re-serialised: a letter nested a thousand deep or a megabyte long lists fine).
- ``GET /v1/admin/dlq/{id}``: one original whole, its bytes as received
  (``application/octet-stream``, as an attachment).
- ``POST /v1/admin/dlq/{id}/requeue``: re-validates the original bytes; a still-invalid event
  is refused (409) with the reason; a valid one is appended to its shopper's partition stream,
  then the dead letter is deleted and the requeue audited. The two streams live in different
  Cluster slots, so this is at-least-once: a requeue repeated after a crash appends the event
  twice and the processor's event-id dedupe drops the second.
- ``DELETE /v1/admin/dlq/{id}``: drops a dead letter that will never be fixed (junk), audited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from origin.admin.base import ADMIN_BUDGET_S, audit, now_ms, query
from origin.auth import require
from origin.body import too_deep
from origin.errors import BadRequest, Conflict, NotFound
from origin.state import AppState, get_state
from segmenter import event
from segmenter.event import Event, Rejection
from segmenter.schema import STREAM_MAXLEN, group_backlog, partition_of

__all__ = ["edge_history", "routes"]

_ID_RE_CHARS = frozenset("0123456789-")
BUCKETS = 30
PREVIEW_BYTES = 2048  # of the original event, in the list (the entry keeps all of it)
# Letters per page: a page is at most about MAX_LIMIT * PREVIEW_BYTES (200 KB) of previews.
MAX_LIMIT = 100
# A processor's letter is msgpack: shown as JSON when it is this small (else as raw text).
DECODED_PREVIEW_MAX = 16 * 1024
# Counts that answered from an edge's cache (fresh or stale) and the ones that did not.
CACHED = ("hit", "stale")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(doc), status_code=status, media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _partition(n: int, length: Any, groups: Any, meta: dict[bytes, bytes]) -> dict[str, Any]:
    m = {k.decode(): _text(v) for k, v in meta.items()}
    return {
        "partition": n,
        "length": int(length) if isinstance(length, int) else 0,
        # no stream yet: XINFO GROUPS answered an error
        **group_backlog([] if isinstance(groups, Exception) else groups),
        "offset": m.get("offset", ""),
        "owner": m.get("owner", ""),
        "lease_until_ms": int(m.get("lease_until_ms") or 0),
        "applied": int(m.get("applied") or 0),
        "dead": int(m.get("dead") or 0),
    }


def _delta(cur: dict[str, int], prev: dict[str, int] | None) -> dict[str, int]:
    """Counter increase; a counter that went down restarted (the edge did) from zero."""
    if prev is None:
        return {}
    return {k: v - prev.get(k, 0) if v >= prev.get(k, 0) else v for k, v in cur.items()}


def edge_history(
    samples: Iterable[tuple[int, str, dict[str, int]]], now_ms: int, window_ms: int
) -> list[dict[str, Any]]:
    """Hit ratio and freshness per bucket from heartbeat samples (ms, edge, counts) (pure).

    ``hit_ratio`` = (hit + stale) / every answer; ``freshness`` = hit / (hit + stale), the
    share of cached answers that were fresh. None where a bucket saw no answers.
    """
    bucket_ms = max(1, window_ms // BUCKETS)
    start = now_ms - BUCKETS * bucket_ms
    sums: list[dict[str, int]] = [{} for _ in range(BUCKETS)]
    last: dict[str, dict[str, int]] = {}
    for ms, edge, counts in sorted(samples):
        d = _delta(counts, last.get(edge))
        last[edge] = counts
        i = (ms - start) // bucket_ms
        if 0 <= i < BUCKETS:
            for k, v in d.items():
                sums[i][k] = sums[i].get(k, 0) + v
    out = []
    for i, s in enumerate(sums):
        total = sum(s.values())
        cached = sum(s.get(k, 0) for k in CACHED)
        out.append(
            {
                "ms": start + i * bucket_ms,
                "answers": total,
                "hit_ratio": round(cached / total, 4) if total else None,
                "freshness": round(s.get("hit", 0) / cached, 4) if cached else None,
            }
        )
    return out


def _window_ms(q: dict[str, str]) -> int:
    raw = q.get("window_s", "900")
    if not raw.isdigit() or not 60 <= int(raw) <= 3600:
        raise BadRequest("window_s must be an integer from 60 to 3600", field="window_s")
    return int(raw) * 1000


def _samples(entries: Sequence[Any]) -> list[tuple[int, str, dict[str, int]]]:
    out = []
    for _, f in entries:
        try:
            counts = orjson.loads(f.get(b"counts", b"{}"))
            out.append(
                (int(f[b"ms"]), _text(f.get(b"edge")), {k: int(v) for k, v in counts.items()})
            )
        except (KeyError, ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
            continue
    return out


def _edges(raw: dict[bytes, bytes], now: int, live_ms: int) -> list[dict[str, Any]]:
    out = []
    for value in raw.values():
        e = orjson.loads(value)
        age = now - int(e.get("received_ms", 0))
        out.append(
            {
                "edge_id": e.get("edge_id", ""),
                "config_etag": e.get("config_etag", ""),
                "age_ms": age,
                "live": age <= live_ms,
                "counts": e.get("counts", {}),
            }
        )
    return sorted(out, key=lambda e: e["edge_id"])


async def overview(request: Request) -> Response:
    """``GET /v1/admin/pipeline``."""
    state = get_state(request)
    require(request, state.settings, ())
    window = _window_ms(query(request, {"window_s"}))
    k, now, n = state.keys, now_ms(state), state.settings.partitions
    pipe = state.store.client.pipeline(transaction=False)
    for p in range(n):
        pipe.xlen(k.stream(p))
        pipe.xinfo_groups(k.stream(p))
        pipe.hgetall(k.partition_meta(p))
    pipe.xlen(k.dlq)
    pipe.hgetall(k.edges)
    pipe.xrange(k.edge_history, min=str(now - window - window // BUCKETS), max="+")
    pipe.get(k.reconcile_report)
    replies = await state.store.run(
        "pipeline", pipe.execute(raise_on_error=False), budget_s=ADMIN_BUDGET_S
    )
    parts = [_partition(p, *replies[3 * p : 3 * p + 3]) for p in range(n)]
    depth, edges, history, reconciled = replies[3 * n :]
    return _json(
        {
            "as_of_ms": now,
            "partitions": parts,
            "behind": sum(p["behind"] for p in parts),
            "dlq": {"depth": int(depth)},
            "edges": _edges(edges, now, state.settings.edge_live_s * 1000),
            "history": {
                "window_s": window // 1000,
                "buckets": edge_history(_samples(history), now, window),
            },
            # the last batch reconciliation (segmenter.reconcile_run), None before the first
            "reconcile": orjson.loads(reconciled) if isinstance(reconciled, bytes) else None,
        }
    )


def _original(raw: bytes, source: str) -> tuple[Any, Event | Rejection]:
    """The decoded original document (None when undecodable) and its validation."""
    if source == "processor":
        result = event.decode(raw)
        try:
            return msgpack.unpackb(raw, strict_map_key=False), result
        except (ValueError, msgpack.UnpackException):
            return None, result
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, Rejection("$", f"not JSON: {exc}")
    return doc, event.validate(doc)


def _preview(raw: bytes, source: str) -> str:
    """Up to ``PREVIEW_BYTES`` of the original as text, found without decoding it whole
    (a small msgpack entry of the processor is shown as JSON)."""
    if source == "processor" and len(raw) <= DECODED_PREVIEW_MAX:
        try:
            doc = msgpack.unpackb(raw, strict_map_key=False)
            if too_deep(doc) is None:
                raw = orjson.dumps(doc, default=repr)
        except (ValueError, TypeError, msgpack.UnpackException, orjson.JSONEncodeError):
            pass  # shown as the bytes it is
    return raw[:PREVIEW_BYTES].decode("utf-8", "replace")


def _letter(entry_id: bytes, f: dict[bytes, bytes]) -> dict[str, Any]:
    raw = f.get(b"raw", b"")
    source = _text(f.get(b"source"))
    return {
        "id": entry_id.decode(),
        "reason": _text(f.get(b"reason")),
        "field": _text(f.get(b"field")),
        "source": source,
        "received_ms": int(f.get(b"received_ms") or 0),
        "stream_id": _text(f.get(b"stream_id")),
        "preview": _preview(raw, source),
        "truncated": len(raw) > PREVIEW_BYTES,
        "raw_bytes": len(raw),
    }


def _entry_id(value: str, field: str) -> str:
    if not 3 <= len(value) <= 41 or not set(value) <= _ID_RE_CHARS or value.count("-") != 1:
        raise BadRequest(f"{field} must be a stream entry id such as 1764000000000-0", field=field)
    return value


async def dead_letters(request: Request) -> Response:
    """``GET /v1/admin/dlq``: newest first; ``next`` is the cursor for the following page."""
    state = get_state(request)
    require(request, state.settings, ())
    q = query(request, {"limit", "before"})
    raw_limit = q.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    limit = int(raw_limit)
    end = f"({_entry_id(q['before'], 'before')}" if "before" in q else "+"

    def build(p: Pipeline) -> None:
        p.xlen(state.keys.dlq)
        p.xrevrange(state.keys.dlq, end, "-", count=limit)

    depth, page = await state.store.pipeline("dlq", build, budget_s=ADMIN_BUDGET_S)
    letters = [_letter(i, f) for i, f in page]
    nxt = letters[-1]["id"] if len(letters) == limit else None
    return _json({"depth": int(depth), "entries": letters, "next": nxt})


async def _dead_letter(state: AppState, entry_id: str) -> dict[bytes, bytes]:
    """One dead letter's fields; 404 when there is none."""
    found = await state.store.run(
        "dlq_read",
        state.store.client.xrange(state.keys.dlq, entry_id, entry_id),
        budget_s=ADMIN_BUDGET_S,
    )
    if not found:
        raise NotFound(f"no dead letter {entry_id!r}", field="id")
    fields: dict[bytes, bytes] = found[0][1]
    return fields


async def dead_letter(request: Request) -> Response:
    """``GET /v1/admin/dlq/{id}``: the original bytes of one dead letter, whole."""
    state = get_state(request)
    require(request, state.settings, ())
    entry_id = _entry_id(str(request.path_params["id"]), "id")
    fields = await _dead_letter(state, entry_id)
    name = f"dead-letter-{entry_id}.{'msgpack' if fields.get(b'source') == b'processor' else 'bin'}"
    return Response(
        fields.get(b"raw", b""),
        media_type="application/octet-stream",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def requeue(request: Request) -> Response:
    """``POST /v1/admin/dlq/{id}/requeue``: back to its partition, or 409 with the reason."""
    state = get_state(request)
    caller = require(request, state.settings, ())
    entry_id = _entry_id(str(request.path_params["id"]), "id")
    k = state.keys
    fields = await _dead_letter(state, entry_id)
    raw, source = fields.get(b"raw", b""), _text(fields.get(b"source"))
    doc, result = _original(raw, source)
    user = _text(fields.get(b"user"))
    if source == "collector" and isinstance(doc, dict) and "user" not in doc and user:
        # the collector keeps the bytes as sent; the shopper it took from the cookie is here
        result = event.validate({**doc, "user": user})
    if isinstance(result, Rejection):
        raise Conflict(
            f"still invalid, not requeued: {result.reason}", field=result.field, id=entry_id
        )
    partition = partition_of(result.user, state.settings.partitions)
    # The stream carries msgpack: a processor's dead letter already is the original entry.
    payload = raw if source == "processor" else event.encode(result)
    # No original event in the audit log: it may name a shopper, and erasure does not
    # rewrite the audit log.
    before = {"reason": _text(fields.get(b"reason")), "source": source, "event": result.event_id}
    stream_id = await state.store.run(
        "dlq_requeue",
        state.store.client.xadd(
            k.stream(partition), {"e": payload}, maxlen=STREAM_MAXLEN, approximate=True
        ),
        budget_s=ADMIN_BUDGET_S,
    )
    after = {"partition": partition, "stream_id": _text(stream_id)}

    def build(p: Pipeline) -> None:
        p.xdel(k.dlq, entry_id)
        audit(p, state, caller, "dlq.requeue", f"dlq:{entry_id}", before=before, after=after)

    await state.store.pipeline("dlq_requeued", build, budget_s=ADMIN_BUDGET_S)
    return _json({"id": entry_id, "requeued": True, **after})


async def drop(request: Request) -> Response:
    """``DELETE /v1/admin/dlq/{id}``: delete one dead letter for good, audited."""
    state = get_state(request)
    caller = require(request, state.settings, ())
    entry_id = _entry_id(str(request.path_params["id"]), "id")
    k = state.keys
    fields = await _dead_letter(state, entry_id)
    # Why it was dead, never the event: it may name a shopper (see requeue).
    before = {name: _text(fields.get(name.encode())) for name in ("reason", "field", "source")}

    def build(p: Pipeline) -> None:
        p.xdel(k.dlq, entry_id)
        audit(p, state, caller, "dlq.drop", f"dlq:{entry_id}", before=before, after=None)

    deleted, _ = await state.store.pipeline("dlq_drop", build, budget_s=ADMIN_BUDGET_S)
    return _json({"id": entry_id, "dropped": bool(deleted)})


def routes() -> list[BaseRoute]:
    """Pipeline routes."""
    return [
        Route("/v1/admin/pipeline", overview, methods=["GET"]),
        Route("/v1/admin/dlq", dead_letters, methods=["GET"]),
        Route("/v1/admin/dlq/{id}", dead_letter, methods=["GET"]),
        Route("/v1/admin/dlq/{id}/requeue", requeue, methods=["POST"]),
        Route("/v1/admin/dlq/{id}", drop, methods=["DELETE"]),
    ]
