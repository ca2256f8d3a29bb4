"""Backup and restore of the admin state (admin role): one versioned JSON document.

- ``GET /v1/admin/backup``: the document below;
- ``POST /v1/admin/restore`` with that document: validated whole first (400 naming the first
  problem, nothing written), then the state replaced in one MULTI on the ``{admin}`` hash tag
  (all or nothing) with its audit entry and a config version bump.

::

    {"kind": "p13n-admin-backup", "version": 1, "created_ms": …, "prefix": "p13n",
     "experiments": {key: record}, "history": {key: [older records, newest first]},
     "catalog": {sku: entry}, "generations": {tag: [soft, hard]}, "item_mask": {sku: ms},
     "token_roles": [{"fingerprint": …, "role": …}]}

Segment rules are a file (``P13N_SEGMENT_RULES``), not stored state. Tokens are configuration
(``P13N_ADMIN_TOKENS``): the backup records their roles by fingerprint, never a token, and a
restore only reports them. Generations never go backwards (edges compare them): each tag keeps
the larger of its current and backed-up counters, and everything is soft-purged once, so edges
revalidate what they cached under the previous state while still serving it.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys.errors import WireError
from cache_keys.wire._check import whole_number
from origin.admin.base import ADMIN_BUDGET_S, audit, now_ms, query, transact
from origin.assignment import parse_experiment
from origin.auth import fingerprint, require
from origin.body import read_json
from origin.catalog_records import SKU_RE, decode_entry
from origin.errors import BadRequest, Unprocessable
from origin.state import AppState, get_state

__all__ = [
    "BACKUP_KIND",
    "BACKUP_VERSION",
    "GEN_MAX",
    "merged_generations",
    "routes",
    "validate",
]

BACKUP_KIND = "p13n-admin-backup"
BACKUP_VERSION = 1
# A generation counter's ceiling: exact in every JSON reader, far from any 64-bit limit.
GEN_MAX = 2**53
SECTIONS = ("experiments", "history", "catalog", "generations", "item_mask")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _gens(raw: dict[Any, Any]) -> dict[str, list[int]]:
    """``{b"sku:a": b"3,1"}`` -> ``{"sku:a": [3, 1]}``."""
    return {_s(k): [int(x) for x in _s(v).split(",")] for k, v in raw.items()}


def _bad(field: str, detail: str) -> BadRequest:
    return BadRequest(f"{field}: {detail}", field=field)


def _check_experiment(where: str, rec: Any, key: str) -> None:
    if not isinstance(rec, dict):
        raise _bad(where, f"not an experiment record with key {key!r}")
    # Rules across fields (422): the OpenAPI schema can only describe them.
    variations, weights = rec.get("variations"), rec.get("weights")
    if (
        isinstance(variations, list)
        and isinstance(weights, list)
        and len(variations) != len(weights)
    ):
        raise Unprocessable(f"{where}: one weight per variation", field=where)
    try:
        exp = parse_experiment(rec)
    except WireError as exc:
        raise _bad(where, str(exc)) from exc
    if exp.key != key:
        raise Unprocessable(f"{where}: the record's key is {exp.key!r}, not {key!r}", field=where)


def _check_experiments(current: dict[str, Any], history: dict[str, Any]) -> None:
    for key, rec in current.items():
        _check_experiment(f"experiments.{key}", rec, key)
    for key, older in history.items():
        if not isinstance(older, list):
            raise _bad(f"history.{key}", "must be a list")
        for i, rec in enumerate(older):
            _check_experiment(f"history.{key}[{i}]", rec, key)


def _check_catalog(catalog: dict[str, Any]) -> None:
    for sku, entry in catalog.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("category"), str)
        # numbers, never booleans (a stored entry decodes False as 0)
        ok = ok and all(
            isinstance(entry.get(name, 0), int | float) and not isinstance(entry.get(name), bool)
            for name in ("price", "stock", "updated_ms")
        )
        if not SKU_RE.fullmatch(sku) or not ok or decode_entry(orjson.dumps(entry)) is None:
            raise _bad(f"catalog.{sku}", "not a catalog entry")


def validate(doc: Any) -> dict[str, Any]:
    """The backup document, or ``BadRequest`` naming the first problem (pure)."""
    if not isinstance(doc, dict) or doc.get("kind") != BACKUP_KIND:
        raise BadRequest(f"not a p13n backup (kind must be {BACKUP_KIND!r})", field="kind")
    if doc.get("version") != BACKUP_VERSION:
        detail = f"backup version {doc.get('version')!r}; this build reads {BACKUP_VERSION}"
        raise BadRequest(detail, field="version")
    for section in SECTIONS:
        if not isinstance(doc.get(section), dict):
            raise _bad(section, "must be an object")
    _check_experiments(doc["experiments"], doc["history"])
    _check_catalog(doc["catalog"])
    # Counters and times are integers (2.0 is 2), never booleans: Redis refuses a bool
    # score (a 5xx), and a bool counter would be stored as "True".
    gens = {}
    for t, g in doc["generations"].items():
        pair = [whole_number(x) for x in g] if isinstance(g, list) and len(g) == 2 else []
        soft, hard = pair if len(pair) == 2 else (None, None)
        if soft is None or hard is None or not (0 <= soft <= GEN_MAX and 0 <= hard <= GEN_MAX):
            raise _bad(f"generations.{t}", f"must be [soft, hard], counters from 0 to {GEN_MAX}")
        gens[t] = [soft, hard]
    mask = {}
    for sku, ms in doc["item_mask"].items():
        n = whole_number(ms)
        if not SKU_RE.fullmatch(sku) or n is None:
            raise _bad(f"item_mask.{sku}", "must be epoch ms")
        mask[sku] = n
    return {**doc, "generations": gens, "item_mask": mask}


def merged_generations(current: dict[Any, Any], backed: dict[str, list[int]]) -> dict[str, str]:
    """Per tag the larger of the current and backed-up counters, and one soft purge of all.

    ``{b"*": b"4,1"}`` and ``{"*": [2, 2]}`` -> ``{"*": "5,2"}``
    """
    out = _gens(current)
    for t, (soft, hard) in backed.items():
        have = out.get(t, [0, 0])
        out[t] = [max(have[0], soft), max(have[1], hard)]
    everything = out.get("*", [0, 0])
    out["*"] = [everything[0] + 1, everything[1]]
    return {t: f"{s},{h}" for t, (s, h) in out.items()}


def _json(doc: Any) -> Response:
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _read(state: AppState) -> dict[str, Any]:
    keys = state.keys

    def build(p: Pipeline) -> None:
        p.hgetall(keys.experiments)
        p.hgetall(keys.catalog)
        p.hgetall(keys.generations)
        p.zrange(keys.item_mask, 0, -1, withscores=True)

    exps, catalog, gens, mask = await state.store.pipeline("backup", build, budget_s=ADMIN_BUDGET_S)
    names = [_s(k) for k in exps]

    def history(p: Pipeline) -> None:
        for key in names:
            p.lrange(keys.experiment_history(key), 0, -1)

    older = await state.store.pipeline("backup_history", history, budget_s=ADMIN_BUDGET_S)
    return {
        "experiments": {_s(k): orjson.loads(v) for k, v in exps.items()},
        "history": {
            k: [orjson.loads(v) for v in h] for k, h in zip(names, older, strict=True) if h
        },
        "catalog": {_s(k): orjson.loads(v) for k, v in catalog.items()},
        "generations": _gens(gens),
        "item_mask": {_s(k): int(v) for k, v in mask},
    }


async def backup(request: Request) -> Response:
    """``GET /v1/admin/backup``: the admin state as one document."""
    state = get_state(request)
    require(request, state.settings, ())
    query(request, set())
    roles = [
        {"fingerprint": fingerprint(t), "role": r} for t, r in state.settings.admin_tokens.items()
    ]
    head = {"kind": BACKUP_KIND, "version": BACKUP_VERSION, "created_ms": now_ms(state)}
    doc = {**head, "prefix": state.keys.prefix, **await _read(state)}
    doc["token_roles"] = sorted(roles, key=lambda d: (d["role"], d["fingerprint"]))
    return _json(doc)


def _role_counts(roles: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in roles if isinstance(roles, list) else []:
        role = str(row.get("role", "?")) if isinstance(row, dict) else "?"
        out[role] = out.get(role, 0) + 1
    return out


async def restore(request: Request) -> Response:
    """``POST /v1/admin/restore``: replace the admin state with a validated backup."""
    state = get_state(request)
    caller = require(request, state.settings, ())
    raw, _ = await read_json(request, state.settings.max_import_bytes)
    doc = validate(raw)
    keys = state.keys
    summary = {s: len(doc[s]) for s in SECTIONS}

    async def read(p: Pipeline) -> tuple[dict[Any, Any], list[Any]]:
        gens = await p.hgetall(keys.generations)
        return gens, [keys.experiment_history(_s(k)) for k in await p.hkeys(keys.experiments)]

    def write(p: Pipeline, current: tuple[dict[Any, Any], list[Any]]) -> dict[str, str]:
        gens = merged_generations(current[0], doc["generations"])
        backed_history = [keys.experiment_history(k) for k in doc["history"]]
        p.delete(keys.experiments, keys.catalog, keys.item_mask, *current[1], *backed_history)
        if doc["experiments"]:
            p.hset(keys.experiments, mapping=_dumped(doc["experiments"]))
        for key, older in doc["history"].items():
            if older:
                p.rpush(keys.experiment_history(key), *(orjson.dumps(v) for v in older))
        if doc["catalog"]:
            p.hset(keys.catalog, mapping=_dumped(doc["catalog"]))
        if doc["item_mask"]:
            p.zadd(keys.item_mask, doc["item_mask"])
        p.hset(keys.generations, mapping=dict[Any, Any](gens))
        audit(p, state, caller, "backup.restore", "admin", before=None, after=summary)
        return gens

    watch = [keys.generations, keys.experiments]
    gens = await transact(state, "restore", watch, read, write)
    report = {
        "restored": summary,
        "generations_after": len(gens),
        "token_roles": _role_counts(doc.get("token_roles")),
    }
    return _json(report)


def _dumped(records: dict[str, Any]) -> dict[Any, Any]:
    return {k: orjson.dumps(v) for k, v in records.items()}


def routes() -> list[BaseRoute]:
    """Backup routes."""
    return [
        Route("/v1/admin/backup", backup, methods=["GET"]),
        Route("/v1/admin/restore", restore, methods=["POST"]),
    ]
