"""Experiments API (experimenter role): create, read, list, update, start, stop, roll back.

Every change stores a new ``version``, pushes the previous record onto the experiment's
history (for rollback) and writes an audit entry, in one transaction. A change of weights, or
of the variations' names or order, on a running experiment bumps ``bucket_version`` and
restarts results; the answer says so in ``bucket_version_bumped`` and ``notice``. A running
experiment past its ``stop_ms`` is shown with ``"ended_by_schedule": true``: it is in no
edge config and holds no namespace range.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys.experiments import HOLDOUT_KEY
from cache_keys.wire._check import SLUG_RE, whole_number
from origin import strategies
from origin.admin.base import audit, json_object, now_ms, query, transact
from origin.admin.results import read_counts
from origin.admin.rules import (
    DEFINITION_FIELDS,
    build_definition,
    check_layer,
    check_routes,
    ended_by_schedule,
    needs_reseed,
)
from origin.auth import Caller, require
from origin.body import read_json
from origin.errors import BadRequest, Conflict, NotFound, OriginError, Unprocessable
from origin.state import AppState, get_state

__all__ = ["auto_stop", "change_experiment", "routes"]

ROLES = ("experimenter",)
HISTORY_MAX = 100


def _json(doc: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(doc),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _key(request: Request) -> str:
    key = str(request.path_params["key"])
    if not SLUG_RE.fullmatch(key):
        raise BadRequest("experiment key must be 1-40 characters of a-z, 0-9 and '-'", field="key")
    return key


async def _all(pipe: Pipeline, state: AppState) -> dict[str, dict[str, Any]]:
    raw = await pipe.hgetall(state.keys.experiments)
    return {k.decode() if isinstance(k, bytes) else k: orjson.loads(v) for k, v in raw.items()}


def _store(
    pipe: Pipeline,
    state: AppState,
    caller: Caller,
    action: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    k = state.keys
    pipe.hset(k.experiments, after["key"], orjson.dumps(after))
    if before is not None:
        pipe.lpush(k.experiment_history(after["key"]), orjson.dumps(before))
        pipe.ltrim(k.experiment_history(after["key"]), 0, HISTORY_MAX - 1)
    audit(pipe, state, caller, action, f"experiment:{after['key']}", before=before, after=after)


def _answer(after: dict[str, Any], bumped: bool, warnings: list[str]) -> Response:
    notice = None
    if bumped:
        notice = (
            f"weights or variations changed on a running experiment: bucket_version is now "
            f"{after['bucket_version']}, every shopper is re-assigned and results restart "
            f"from {after['results_from_ms']}"
        )
    doc = {"experiment": after, "bucket_version_bumped": bumped, "notice": notice}
    return _json({**doc, "warnings": warnings})


def _draft_warnings(record: dict[str, Any], docs: dict[str, dict[str, Any]], ms: int) -> list[str]:
    """What starting a draft would meet: overlaps said now, refusals as warnings."""
    running = {**record, "status": "running"}
    try:
        check_layer(running, docs.values(), ms)
        return check_routes(running, docs.values(), ms)
    except OriginError as exc:
        return [f"starting it would be refused: {exc.detail}"]


async def create(request: Request) -> Response:
    """Create a draft experiment."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    body = json_object(doc, {*DEFINITION_FIELDS, "key", "seed"}, {"key", "variations"})
    key = body["key"]
    if not isinstance(key, str) or not SLUG_RE.fullmatch(key):
        raise BadRequest("key must be 1-40 characters of a-z, 0-9 and '-'", field="key")
    if key == HOLDOUT_KEY:
        raise Unprocessable(
            f"key {key!r} is the global holdout's (see /v1/admin/holdout)", field="key"
        )
    seed = body.get("seed", key)
    if not isinstance(seed, str) or not 0 < len(seed) <= 60:
        raise BadRequest("seed must be a string of 1-60 characters", field="seed")
    record = build_definition(
        body,
        key=key,
        seed=seed,
        status="draft",
        bucket_version=0,
        seg_key=state.settings.segment_key,
    )
    ms = now_ms(state)
    record.update(
        version=1, created_ms=ms, updated_ms=ms, results_from_ms=None, results_baseline={}
    )

    async def read(pipe: Pipeline) -> dict[str, dict[str, Any]]:
        return await _all(pipe, state)

    def write(pipe: Pipeline, docs: dict[str, dict[str, Any]]) -> list[str]:
        if key in docs:
            raise Conflict(f"experiment {key!r} already exists", field="key")
        _store(pipe, state, caller, "experiment.create", before=None, after=record)
        return _draft_warnings(record, docs, ms)

    warnings = await transact(state, "experiment_create", [state.keys.experiments], read, write)
    doc = {"experiment": record, "bucket_version_bumped": False, "notice": None}
    return _json({**doc, "warnings": warnings}, 201)


async def list_experiments(request: Request) -> Response:
    """Every experiment, by key."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    q = query(request, {"status"})
    raw = await state.store.run("experiments", state.store.client.hgetall(state.keys.experiments))
    ms = now_ms(state)
    docs = sorted((_shown(orjson.loads(v), ms) for v in raw.values()), key=lambda d: d["key"])
    if "status" in q:
        docs = [d for d in docs if d["status"] == q["status"]]
    return _json({"experiments": docs})


async def get_experiment(request: Request) -> Response:
    """One experiment, with its earlier versions' numbers."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    key = _key(request)
    raw = await state.store.run("experiment", state.store.client.hget(state.keys.experiments, key))
    if raw is None:
        raise NotFound(f"no experiment {key!r}", field="key")
    return _json(_shown(orjson.loads(raw), now_ms(state)))


def _shown(doc: dict[str, Any], ms: int) -> dict[str, Any]:
    if doc.get("status") == "running" and ended_by_schedule(doc, ms):
        doc["ended_by_schedule"] = True
    return doc


async def _change(
    request: Request, action: str, change: Any, *, restart_results: bool = False
) -> Response:
    """Apply ``change(current, all, now_ms) -> new`` to one experiment, transactionally."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    after, bumped, warnings = await change_experiment(
        state, caller, _key(request), action, change, restart_results=restart_results
    )
    return _answer(after, bumped, warnings)


async def change_experiment(
    state: AppState, caller: Caller, key: str, action: str, change: Any, *,
    restart_results: bool = False,
) -> tuple[dict[str, Any], bool, list[str]]:  # fmt: skip
    """The change of one experiment (audited as ``caller``): (after, re-seeded, warnings)."""
    counts = await read_counts(state, key)
    bumped = [False]
    warnings: list[str] = []

    async def read(pipe: Pipeline) -> dict[str, dict[str, Any]]:
        return await _all(pipe, state)

    def write(pipe: Pipeline, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        before = docs.get(key)
        if before is None:
            raise NotFound(f"no experiment {key!r}", field="key")
        ms = now_ms(state)
        after: dict[str, Any] = change(before, ms)
        if needs_reseed(before, after):
            after["bucket_version"] = before["bucket_version"] + 1
            after["reseeded_at_ms"] = ms  # results say so, with their caveat
            bumped[0] = True
        if bumped[0] or (restart_results and before.get("results_from_ms") is None):
            after["results_from_ms"], after["results_baseline"] = ms, counts
        if after["status"] == "running":
            check_layer(after, docs.values(), ms)
            warnings.extend(check_routes(after, docs.values(), ms))
        after.update(version=before["version"] + 1, updated_ms=ms)
        _store(pipe, state, caller, action, before=before, after=after)
        return after

    after: dict[str, Any] = await transact(state, action, [state.keys.experiments], read, write)
    return after, bumped[0], warnings


async def auto_stop(state: AppState, key: str, reason: dict[str, Any]) -> dict[str, Any]:
    """Stop ``key`` for a guardrail (``origin.admin.guardrails``), the reason kept on it."""

    def change(before: dict[str, Any], ms: int) -> dict[str, Any]:
        if before["status"] != "running":
            raise Conflict("experiment is not running", field="status")
        return {**before, "status": "stopped", "stopped_by_guardrail": reason}

    caller = Caller("guardrails", "auto-stop")
    return (await change_experiment(state, caller, key, "experiment.auto_stop", change))[0]


def _redefine(
    before: dict[str, Any], doc: dict[str, Any], seg_key: bytes, *, stored: bool = False
) -> dict[str, Any]:
    """``before`` changed by ``doc`` (``stored``: ``doc``'s variations are a stored version's,
    strategies already written out)."""
    merged = {**before, **doc}
    if "segment_names" in doc and "segments" not in doc:
        merged["segments"] = []
    out = build_definition(
        merged,
        key=before["key"],
        seed=before["seed"],
        status=before["status"],
        bucket_version=before["bucket_version"],
        seg_key=seg_key,
        stored_variations=stored or "variations" not in doc,
    )
    for field in ("created_ms", "results_from_ms", "results_baseline", "version"):
        out[field] = before.get(field)
    if "reseeded_at_ms" in before:
        out["reseeded_at_ms"] = before["reseeded_at_ms"]
    return out


async def update(request: Request) -> Response:
    """Change definition fields (coverage ramps in place; new weights re-seed when running)."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    body = json_object(doc, set(DEFINITION_FIELDS))
    if not body:
        raise BadRequest("nothing to change: send at least one field", field="$")
    if "hash_version" in body:
        raise BadRequest("hash_version cannot change after creation", field="hash_version")
    seg_key = state.settings.segment_key
    return await _change(request, "experiment.update", lambda b, ms: _redefine(b, body, seg_key))


def _status(status: str) -> Any:
    def change(before: dict[str, Any], ms: int) -> dict[str, Any]:
        if before["status"] == status:
            raise Conflict(f"experiment is already {status}", field="status")
        after = {**before, "status": status}
        after.pop("stopped_by_guardrail", None)  # a restart clears the last auto-stop
        return after

    return change


async def start(request: Request) -> Response:
    """Start (or restart) an experiment; its layer range must be free."""
    return await _change(request, "experiment.start", _status("running"), restart_results=True)


async def stop(request: Request) -> Response:
    """Stop an experiment."""
    return await _change(request, "experiment.stop", _status("stopped"))


async def rollback(request: Request) -> Response:
    """Restore the definition of an earlier version (as a new version)."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    body = json_object(doc, {"version"}, {"version"})
    version = whole_number(body["version"])
    if version is None or version < 1:
        raise BadRequest("version must be a positive integer", field="version")
    key = _key(request)
    raw = await state.store.run(
        "experiment_history", state.store.client.lrange(state.keys.experiment_history(key), 0, -1)
    )
    earlier = [orjson.loads(r) for r in raw]
    target = next((d for d in earlier if d["version"] == version), None)
    if target is None:
        known = sorted(d["version"] for d in earlier)
        raise NotFound(f"experiment {key!r} has no earlier version {version}", versions=known)
    definition = {f: target.get(f) for f in DEFINITION_FIELDS - {"segment_names", "hash_version"}}
    seg_key = state.settings.segment_key

    def change(before: dict[str, Any], ms: int) -> dict[str, Any]:
        return {
            **_redefine(before, definition, seg_key, stored=True),
            "rolled_back_to": version,
        }

    return await _change(request, "experiment.rollback", change)


async def list_strategies(request: Request) -> Response:
    """The named ranking strategies a variation may pick, with what each does."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    return _json({"strategies": strategies.describe()})


def routes() -> list[BaseRoute]:
    """Experiment routes."""
    base = "/v1/admin/experiments"
    return [
        Route("/v1/admin/strategies", list_strategies, methods=["GET"]),
        Route(base, create, methods=["POST"]),
        Route(base, list_experiments, methods=["GET"]),
        Route(base + "/{key}", get_experiment, methods=["GET"]),
        Route(base + "/{key}", update, methods=["PATCH"]),
        Route(base + "/{key}/start", start, methods=["POST"]),
        Route(base + "/{key}/stop", stop, methods=["POST"]),
        Route(base + "/{key}/rollback", rollback, methods=["POST"]),
    ]
