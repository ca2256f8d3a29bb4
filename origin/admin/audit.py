"""The audit log and the tokens' roles (admin role).

``GET /v1/admin/audit?limit=&before=&target=&action=``: newest first; ``next`` is the cursor
for the following page. ``GET /v1/admin/tokens``: each configured token's role, identified by
fingerprint (tokens themselves are never shown).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from origin.admin.base import ADMIN_BUDGET_S, page_end, query
from origin.auth import fingerprint, require
from origin.errors import BadRequest
from origin.state import get_state

__all__ = ["ENTRY_ID_RE", "routes"]

# A stream entry id: two 64-bit numbers; 19 digits each stay below 2**64 (Redis refuses more).
ENTRY_ID_RE = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
SCAN_MAX = 5000


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    f = {k.decode(): v for k, v in fields.items()}
    return {
        "id": entry_id.decode(),
        "ms": int(f.get("ms", b"0")),
        "who": f.get("who", b"").decode(),
        "action": f.get("action", b"").decode(),
        "target": f.get("target", b"").decode(),
        "before": orjson.loads(f.get("before", b"null")),
        "after": orjson.loads(f.get("after", b"null")),
    }


def _limit(q: dict[str, str]) -> int:
    raw = q.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise BadRequest("limit must be an integer from 1 to 500", field="limit")
    return int(raw)


async def audit_log(request: Request) -> Response:
    """Audit entries, newest first, optionally filtered by target or action."""
    state = get_state(request)
    require(request, state.settings, ())
    q = query(request, {"limit", "before", "target", "action"})
    limit = _limit(q)
    before = q.get("before")
    if before is not None and not ENTRY_ID_RE.fullmatch(before):
        raise BadRequest("before must be an audit entry id such as 1764000000000-0", field="before")
    end = page_end(before)
    count = limit if not ("target" in q or "action" in q) else SCAN_MAX
    page = (
        await state.store.run(
            "audit",
            state.store.client.xrevrange(state.keys.audit, end, "-", count=count),
            budget_s=ADMIN_BUDGET_S,
        )
        if end is not None
        else []
    )
    entries = [_entry(i, f) for i, f in page]
    if "target" in q:
        entries = [e for e in entries if e["target"] == q["target"]]
    if "action" in q:
        entries = [e for e in entries if e["action"] == q["action"]]
    entries = entries[:limit]
    nxt = entries[-1]["id"] if len(entries) == limit else None
    return Response(
        orjson.dumps({"entries": entries, "next": nxt}),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def tokens(request: Request) -> Response:
    """Each configured token's role, by fingerprint."""
    state = get_state(request)
    require(request, state.settings, ())
    query(request, set())
    doc = sorted(
        (
            {"fingerprint": fingerprint(t), "role": r}
            for t, r in state.settings.admin_tokens.items()
        ),
        key=lambda d: (d["role"], d["fingerprint"]),
    )
    return Response(
        orjson.dumps({"tokens": doc}),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def routes() -> list[BaseRoute]:
    """Audit routes."""
    return [
        Route("/v1/admin/audit", audit_log, methods=["GET"]),
        Route("/v1/admin/tokens", tokens, methods=["GET"]),
    ]
