"""``p13n backup FILE`` / ``p13n restore FILE``: the admin state in one versioned JSON file.

    {"kind": "p13n-admin-backup", "version": 1, "created_ms": …, "prefix": "p13n",
     "experiments": {key: record}, "history": {key: [older records, newest first]},
     "catalog": {sku: entry}, "generations": {tag: [soft, hard]}, "item_mask": {sku: ms},
     "token_roles": [{"fingerprint": …, "role": …}]}

Segment rules are a file (``P13N_SEGMENT_RULES``), not stored state: keep that file in
version control. Tokens are configuration (``P13N_ADMIN_TOKENS``): the backup records their
roles by fingerprint, never a token, and a restore only compares them.

A restore validates the whole file first, then replaces the state in one MULTI on the
``{admin}`` hash tag (all or nothing), with an audit entry and a config version bump.
Generations never go backwards (edges compare them): each tag keeps the larger of its
current and backed-up counters, and everything is soft-purged once, so edges revalidate
what they cached under the previous state while still serving it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from redis.exceptions import WatchError

from cache_keys.errors import WireError
from ops.target import OpsError, Target
from origin.catalog import SKU_RE, decode_entry
from origin.experiments import parse_experiment

__all__ = ["BACKUP_KIND", "BACKUP_VERSION", "backup", "restore", "validate"]

BACKUP_KIND = "p13n-admin-backup"
BACKUP_VERSION = 1
_SECTIONS = ("experiments", "history", "catalog", "generations", "item_mask")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def backup(target: Target, path: Path) -> dict[str, Any]:
    """Write the admin state to ``path``; the document written."""
    keys = target.keys
    roles = target.api("GET", "/v1/admin/tokens")["tokens"]
    with target.redis() as r:
        exps = {_s(k): orjson.loads(v) for k, v in r.hgetall(keys.experiments).items()}
        history = {}
        for key in exps:
            older = r.lrange(keys.experiment_history(key), 0, -1)
            if older:
                history[key] = [orjson.loads(v) for v in older]
        catalog = {_s(k): orjson.loads(v) for k, v in r.hgetall(keys.catalog).items()}
        gens = {
            _s(k): [int(x) for x in _s(v).split(",")]
            for k, v in r.hgetall(keys.generations).items()
        }
        scored: Any = r.zrange(keys.item_mask, 0, -1, withscores=True)
        mask = {_s(k): int(v) for k, v in scored}
    doc = {
        "kind": BACKUP_KIND,
        "version": BACKUP_VERSION,
        "created_ms": int(time.time() * 1000),
        "prefix": target.prefix,
        "experiments": exps,
        "history": history,
        "catalog": catalog,
        "generations": gens,
        "item_mask": mask,
        "token_roles": roles,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tmp.replace(path)
    return doc


def _check_experiment(where: str, rec: Any, key: str) -> None:
    if not isinstance(rec, dict) or rec.get("key") != key:
        raise OpsError(f"{where}: not an experiment record with key {key!r}")
    try:
        parse_experiment(rec)
    except WireError as exc:
        raise OpsError(f"{where}: {exc}") from exc


def _check_experiments(current: dict[str, Any], history: dict[str, Any]) -> None:
    for key, rec in current.items():
        _check_experiment(f"experiments.{key}", rec, key)
    for key, older in history.items():
        if not isinstance(older, list):
            raise OpsError(f"history.{key} must be a list")
        for i, rec in enumerate(older):
            _check_experiment(f"history.{key}[{i}]", rec, key)


def _check_catalog(catalog: dict[str, Any]) -> None:
    for sku, entry in catalog.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("category"), str)
        if not SKU_RE.fullmatch(sku) or not ok or decode_entry(orjson.dumps(entry)) is None:
            raise OpsError(f"catalog.{sku}: not a catalog entry")


def validate(doc: Any) -> dict[str, Any]:
    """The backup document, or ``OpsError`` naming the first problem."""
    if not isinstance(doc, dict) or doc.get("kind") != BACKUP_KIND:
        raise OpsError(f"not a p13n backup (kind must be {BACKUP_KIND!r})")
    if doc.get("version") != BACKUP_VERSION:
        raise OpsError(f"backup version {doc.get('version')!r}; this build reads {BACKUP_VERSION}")
    for section in _SECTIONS:
        if not isinstance(doc.get(section), dict):
            raise OpsError(f"{section} must be an object")
    _check_experiments(doc["experiments"], doc["history"])
    _check_catalog(doc["catalog"])
    for t, g in doc["generations"].items():
        if not (isinstance(g, list) and len(g) == 2 and all(isinstance(x, int) for x in g)):
            raise OpsError(f"generations.{t} must be [soft, hard]")
    for sku, ms in doc["item_mask"].items():
        if not SKU_RE.fullmatch(sku) or not isinstance(ms, int):
            raise OpsError(f"item_mask.{sku} must be epoch ms")
    return doc


def _merged_gens(current: dict[Any, Any], backed: dict[str, list[int]]) -> dict[str, str]:
    out: dict[str, list[int]] = {}
    for k, v in current.items():
        out[_s(k)] = [int(x) for x in _s(v).split(",")]
    for t, (soft, hard) in backed.items():
        have = out.get(t, [0, 0])
        out[t] = [max(have[0], soft), max(have[1], hard)]
    everything = out.get("*", [0, 0])
    out["*"] = [everything[0] + 1, everything[1]]  # one soft purge of everything
    return {t: f"{s},{h}" for t, (s, h) in out.items()}


def restore(target: Target, path: Path) -> dict[str, Any]:
    """Validate ``path`` and replace the admin state with it, atomically."""
    try:
        doc = validate(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}") from exc
    keys = target.keys
    with target.redis() as r:
        old_hist = [k for k in r.scan_iter(match=keys.experiment_history("*"), count=1000)]
        for _ in range(3):
            try:
                gens = _write(r, keys, doc, old_hist)
                break
            except WatchError:
                continue
        else:
            raise OpsError("admin state kept changing during the restore; try again")
    return {
        "restored": {s: len(doc[s]) for s in _SECTIONS},
        "generations_after": len(gens),
        "token_roles": _role_counts(doc.get("token_roles") or []),
    }


def _write(r: Any, keys: Any, doc: dict[str, Any], old_hist: list[Any]) -> dict[str, str]:
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(keys.generations)
        gens = _merged_gens(pipe.hgetall(keys.generations), doc["generations"])
        pipe.multi()
        pipe.delete(keys.experiments, keys.catalog, keys.item_mask, *old_hist)
        exps = {k: orjson.dumps(v) for k, v in doc["experiments"].items()}
        if exps:
            pipe.hset(keys.experiments, mapping=exps)
        for key, older in doc["history"].items():
            if older:
                pipe.rpush(keys.experiment_history(key), *(orjson.dumps(v) for v in older))
        if doc["catalog"]:
            pipe.hset(keys.catalog, mapping={k: orjson.dumps(v) for k, v in doc["catalog"].items()})
        if doc["item_mask"]:
            pipe.zadd(keys.item_mask, doc["item_mask"])
        pipe.hset(keys.generations, mapping=gens)
        summary = {s: len(doc[s]) for s in _SECTIONS}
        pipe.xadd(keys.audit, {"ms": int(time.time() * 1000), "who": "ops:restore",
                               "action": "backup.restore", "target": "admin",
                               "before": b"null", "after": orjson.dumps(summary)})  # fmt: skip
        pipe.incr(keys.config_version)
        pipe.execute()
    return gens


def _role_counts(roles: list[dict[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in roles:
        out[row.get("role", "?")] = out.get(row.get("role", "?"), 0) + 1
    return out


def restore_text(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in report["restored"].items())
    roles = ", ".join(f"{n} {r}" for r, n in sorted(report["token_roles"].items())) or "none"
    return (
        f"restored {counts}; everything soft-purged once\n"
        f"token roles in the backup: {roles} (tokens are configuration: not restored)"
    )
