"""``p13n backup FILE`` / ``p13n restore FILE``: the admin state in one versioned JSON file.

Both go through the admin API (``origin.admin.backup`` defines the document and its
validation): ``GET /v1/admin/backup`` writes the file; ``POST /v1/admin/restore`` replaces the
state with it, all or nothing, audited under the token's name. The file is validated here
first with the same function, so a broken file is named before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ops.helptext import plural
from ops.target import OpsError, Target
from origin.admin.backup import BACKUP_KIND, BACKUP_VERSION, SECTIONS, validate
from origin.errors import BadRequest

__all__ = [
    "BACKUP_KIND",
    "BACKUP_VERSION",
    "backup",
    "counts",
    "counts_text",
    "restore",
    "restore_text",
]


def backup(target: Target, path: Path) -> dict[str, Any]:
    """Write the admin state to ``path`` (atomically); the document written."""
    doc: dict[str, Any] = target.api("GET", "/v1/admin/backup")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tmp.replace(path)
    return doc


# How a section's count reads: "1 experiment", "3 catalog entries".
_NOUNS = {
    "experiments": ("experiment", "experiments"),
    "catalog": ("catalog entry", "catalog entries"),
    "generations": ("tag generation", "tag generations"),
    "item_mask": ("masked item", "masked items"),
}


def counts_text(counts: dict[str, int]) -> str:
    """``{"experiments": 1, "catalog": 3}`` -> ``"1 experiment, 3 catalog entries"``."""
    return ", ".join(plural(n, *_NOUNS.get(s, (s, s))) for s, n in counts.items())


def counts(doc: dict[str, Any]) -> dict[str, int]:
    """Entries per section of a backup document."""
    return {s: len(doc[s]) for s in SECTIONS if s != "history"}


def restore(target: Target, path: Path) -> dict[str, Any]:
    """Validate ``path``, then replace the admin state with it through the API; its report."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}") from exc
    try:
        validate(doc)
    except BadRequest as exc:
        raise OpsError(exc.detail) from exc
    report: dict[str, Any] = target.api("POST", "/v1/admin/restore", doc)
    return report


def restore_text(report: dict[str, Any]) -> str:
    restored = counts_text(report["restored"])
    roles = ", ".join(f"{n} {r}" for r, n in sorted(report["token_roles"].items())) or "none"
    return (
        f"restored {restored}; everything soft-purged once\n"
        f"token roles in the backup: {roles} (tokens are configuration: not restored)"
    )
