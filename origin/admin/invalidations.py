"""Invalidations (merchandiser role): generations, the item mask, pushes to edges, Cloudflare.

``POST /v1/admin/invalidations`` ``{"tags": ["sku:AB-1", "cat:dairy", "all"], "mode": "hard"}``

1. bumps each tag's generations atomically (soft always; hard too for a hard purge);
2. records the invalidation, adds hard-purged skus to the item mask, audits, in one MULTI;
   a sku tag names its catalog ids whatever the case it was typed in (``resolve_skus``):
   ``sku:sku-9`` masks ``SKU-9``; the record's ``mask_add`` lists the ids masked;
3. publishes ``cache_keys.wire.encode_purge`` on ``Keys.purge_channel`` (self-hosted edges);
4. for hard purges, when a Cloudflare zone is configured, purges by tag (or everything).
   Soft purges ride on generations alone: Cloudflare has no soft purge by tag, and the
   Worker marks entries stale when their generations fall behind the config's.

With ``when`` (epoch ms or RFC 3339) the invalidation is queued (``origin.admin.schedule``)
and applied on time under the id the 202 answers. ``origin.admin.purge_log`` reports records
and how many live edges applied each.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import TagError, tag
from cache_keys.wire import ALL_TAG, PURGE_MODES, PurgeMessage, encode_purge
from origin.admin import schedule
from origin.admin.base import ADMIN_BUDGET_S, audit, json_object, now_ms
from origin.auth import Caller, require
from origin.body import read_json
from origin.catalog_records import SKU_RE
from origin.cloudflare import PurgeOutcome
from origin.errors import BadRequest
from origin.state import AppState, get_state

__all__ = ["Plan", "invalidate", "plan", "resolve_skus", "routes"]

ROLES = ("merchandiser",)
MAX_TAGS = 1000
# Bumps "soft,hard" counters of each tag in one atomic step; returns tag, soft, hard, ...
_BUMP = """
local out = {}
for i, t in ipairs(ARGV) do
  if i > 1 then
    local cur = redis.call('HGET', KEYS[1], t) or '0,0'
    local s, h = string.match(cur, '^(%d+),(%d+)$')
    s = tonumber(s or 0) + 1
    h = tonumber(h or 0)
    if ARGV[1] == 'hard' then h = h + 1 end
    redis.call('HSET', KEYS[1], t, s .. ',' .. h)
    table.insert(out, t); table.insert(out, s); table.insert(out, h)
  end
end
return out
"""


def parse_tags(raw: Any) -> tuple[list[str], list[str]]:
    """Normalized tags and the skus among them (as given, for the mask); 400 when malformed."""
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_TAGS:
        raise BadRequest(f"tags must be a list of 1 to {MAX_TAGS} tags", field="tags")
    tags: list[str] = []
    skus: list[str] = []
    for i, t in enumerate(raw):
        if t in ("all", ALL_TAG):
            tags.append(ALL_TAG)
            continue
        kind, sep, value = t.partition(":") if isinstance(t, str) else ("", "", "")
        try:
            if not sep:
                raise TagError("must be kind:value with kind sku, cat, seg, route or exp, or all")
            tags.append(tag(kind, value))
        except TagError as exc:
            raise BadRequest(f"tags[{i}]: {exc}", field=f"tags[{i}]") from exc
        if kind == "sku" and SKU_RE.fullmatch(value):
            skus.append(value)
    return list(dict.fromkeys(tags)), list(dict.fromkeys(skus))


def _nocase_pattern(sku: str) -> str:
    """A glob matching ``sku`` in any letter case, glob specials escaped.

    ``"Ab-1*"`` -> ``"[aA][bB]-1\\*"``
    """
    out = []
    for ch in sku:
        if ch.isascii() and ch.isalpha():
            out.append(f"[{ch.lower()}{ch.upper()}]")
        elif ch in "*?[]^\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


async def resolve_skus(state: AppState, skus: list[str]) -> list[str]:
    """The catalog ids that ``skus`` (as typed in sku tags) name, for the item mask.

    Tags are case-folded, ids are not: ``sku:sku-9`` purges the caches of ``SKU-9``, so the
    mask must hold ``SKU-9``. An id the catalog holds exactly stands for itself; otherwise
    every case variant in the catalog is masked, and the typed value too (items can be
    recommended before the catalog knows them). Admin-only, so a scan of the catalog is fine.
    """
    if not skus:
        return []
    client, key = state.store.client, state.keys.catalog

    def build(p: Pipeline) -> None:
        for sku in skus:
            p.hexists(key, sku)

    exact = await state.store.pipeline("invalidate_skus", build, budget_s=ADMIN_BUDGET_S)

    async def variants(sku: str) -> list[str]:
        found = []
        async for field, _ in client.hscan_iter(key, match=_nocase_pattern(sku), count=1000):
            found.append(field.decode() if isinstance(field, bytes) else str(field))
        return sorted(found)

    out: list[str] = []
    for sku, hit in zip(skus, exact, strict=True):
        out.append(sku)
        if not hit:
            out += await state.store.run("invalidate_scan", variants(sku), budget_s=ADMIN_BUDGET_S)
    return list(dict.fromkeys(out))


def _new_id(ms: int) -> str:
    return f"inv-{ms}-{secrets.token_hex(4)}"


async def _cloudflare(state: AppState, mode: str, tags: Sequence[str]) -> PurgeOutcome:
    purger = state.cloudflare
    if purger is None:
        return PurgeOutcome("skipped", detail="no Cloudflare zone configured")
    if mode != "hard":
        return PurgeOutcome("skipped", detail="soft purge: edges compare generations")
    outcome = await purger.purge([t for t in tags if t != ALL_TAG], everything=ALL_TAG in tags)
    state.metrics.cloudflare.labels(outcome.status).inc()
    return outcome


@dataclass(frozen=True)
class Plan:
    """What one invalidation will do, decided before any I/O (pure)."""

    id: str
    tags: list[str]
    skus: list[str]
    mode: str
    reason: str
    who: str
    ms: int

    @property
    def mask_add(self) -> list[str]:
        """Skus a hard purge masks at once; a soft purge masks nothing."""
        return self.skus if self.mode == "hard" else []

    def record(self, gens: dict[str, tuple[int, int]]) -> dict[str, Any]:
        """The stored record, once the generations are bumped."""
        return {
            "id": self.id,
            "tags": self.tags,
            "mode": self.mode,
            "reason": self.reason,
            "who": self.who,
            "created_ms": self.ms,
            "generations": {t: list(g) for t, g in gens.items()},
            "mask_add": self.mask_add,
        }

    def message(self, gens: dict[str, tuple[int, int]]) -> PurgeMessage:
        """The purge pushed to self-hosted edges."""
        return PurgeMessage(self.id, self.mode, tuple(self.tags), gens, tuple(self.mask_add),
                            self.ms)  # fmt: skip


def plan(caller: Caller, tags: list[str], skus: list[str], *, mode: str, reason: str, ms: int
) -> Plan:  # fmt: skip
    """The invalidation's plan: a new id, the tags, and the skus to mask (pure but the id)."""
    return Plan(_new_id(ms), tags, skus, mode, reason, caller.who, ms)


async def _bump(state: AppState, p: Plan) -> dict[str, tuple[int, int]]:
    """Step 1: the tags' new generations, bumped atomically by the Lua script."""
    bump = state.store.client.register_script(_BUMP)
    flat = await state.store.run(
        "invalidate_gens",
        bump(keys=[state.keys.generations], args=[p.mode, *p.tags]),
        budget_s=ADMIN_BUDGET_S,
    )
    return {flat[i].decode(): (int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)}


async def _commit(state: AppState, caller: Caller, p: Plan, record: dict[str, Any]) -> int:
    """Step 2: record, mask and audit in one MULTI; the config revision it bumped to."""
    keys = state.keys

    def build(pipe: Pipeline) -> None:
        pipe.hset(keys.invalidations, p.id, orjson.dumps(record))
        if p.mask_add:
            pipe.zadd(keys.item_mask, dict.fromkeys(p.mask_add, p.ms))
        audit(pipe, state, caller, "invalidation.create", f"invalidation:{p.id}",
              before=None, after=record)  # fmt: skip
        pipe.incr(keys.config_version)

    done = await state.store.pipeline(
        "invalidate", build, transaction=True, budget_s=ADMIN_BUDGET_S
    )
    return int(done[-1])  # the INCR of the config version, queued last


async def _publish(state: AppState, msg: PurgeMessage) -> int:
    """Step 3: push to self-hosted edges; how many subscribers got it.

    After EXEC, not inside it: a cluster forbids PUBLISH in a MULTI block (the channel has no
    slot). Edges also pull generations with their config, so a publish lost between the two
    steps only delays a purge by the config's max-age.
    """
    pushed = await state.store.run(
        "invalidate_publish",
        state.store.client.publish(state.keys.purge_channel, encode_purge(msg)),
        budget_s=ADMIN_BUDGET_S,
    )
    return int(pushed)


async def _store_outcome(state: AppState, record: dict[str, Any]) -> None:
    """Step 5: the record again, with where the purge went."""
    await state.store.run(
        "invalidate_status",
        state.store.client.hset(state.keys.invalidations, record["id"], orjson.dumps(record)),
        budget_s=ADMIN_BUDGET_S,
    )


async def _forget_locally(state: AppState, p: Plan) -> None:
    """Step 6: this worker's metrics, caches and snapshot see the purge at once."""
    state.metrics.invalidations.labels(p.mode).inc()
    if ALL_TAG in p.tags:
        state.caches.clear()
    state.caches.forget_items(p.skus)
    try:
        await state.snapshot.refresh()
    except Exception:  # the background refresh will catch up
        state.metrics.snapshot_refresh.labels("failed").inc()


async def invalidate(
    state: AppState,
    caller: Caller,
    tags: list[str],
    skus: list[str],
    *,
    mode: str,
    reason: str,
    inv_id: str | None = None,
    scheduled_for_ms: int | None = None,
) -> dict[str, Any]:
    """Run one invalidation end to end (the module docstring's steps); returns its record.
    A scheduled one keeps the id it was queued under and says when it was due."""
    p = plan(caller, tags, skus, mode=mode, reason=reason, ms=now_ms(state))
    if inv_id is not None:
        p = replace(p, id=inv_id)
    gens = await _bump(state, p)
    record = p.record(gens)
    record["scheduled_for_ms"] = scheduled_for_ms
    record["revision"] = await _commit(state, caller, p, record)
    record["pushed_to_subscribers"] = await _publish(state, p.message(gens))
    record["cloudflare"] = (await _cloudflare(state, mode, tags)).to_json()
    await _store_outcome(state, record)
    await _forget_locally(state, p)
    return record


async def _schedule(
    state: AppState, caller: Caller, when: Any, tags: list[str], skus: list[str], *, mode: str,
    reason: str,
) -> dict[str, Any]:  # fmt: skip
    """Queue the invalidation for ``when``; its record (status ``scheduled``) is in the log
    at once, under the id it will be applied with."""
    ms = now_ms(state)
    due = schedule.parse_when(when, ms)
    p = plan(caller, tags, skus, mode=mode, reason=reason, ms=ms)
    payload = {"id": p.id, "tags": tags, "skus": skus, "mode": mode, "reason": reason}
    record = {**p.record({}), "scheduled_for_ms": due, "state": "scheduled"}
    await state.store.run(
        "invalidate_record",
        state.store.client.hset(state.keys.invalidations, p.id, orjson.dumps(record)),
        budget_s=ADMIN_BUDGET_S,
    )
    await schedule.enqueue(state, caller, "invalidation", payload, due)
    return record


async def create(request: Request) -> Response:
    """``POST /v1/admin/invalidations``."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    body = json_object(doc, {"tags", "mode", "reason", "when"}, {"tags"})
    mode = body.get("mode", "soft")
    if not isinstance(mode, str) or mode not in PURGE_MODES:  # {} is unhashable: no 500
        raise BadRequest("mode must be soft or hard", field="mode")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise BadRequest("reason must be a string of at most 500 characters", field="reason")
    tags, skus = parse_tags(body["tags"])
    skus = await resolve_skus(state, skus)
    if "when" in body:
        record = await _schedule(state, caller, body["when"], tags, skus, mode=mode, reason=reason)
    else:
        record = await invalidate(state, caller, tags, skus, mode=mode, reason=reason)
    return Response(
        orjson.dumps(record),
        status_code=202,
        media_type="application/json",
        headers={
            "Cache-Control": "no-store",
            "Location": f"/v1/admin/invalidations/{record['id']}",
        },
    )


def routes() -> list[BaseRoute]:
    """Invalidation routes."""
    return [
        Route("/v1/admin/invalidations", create, methods=["POST"]),
    ]
