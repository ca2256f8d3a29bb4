"""The schema compatibility check: the registry against the published lock file.

    python -m segmenter.compat            exit 1 and one line per violation, else "compatible"
    python -m segmenter.compat --write    after an allowed change: pin it in the lock file

``make test`` runs it (``tests/segmenter/test_compat.py``). The rules are those of
``segmenter.registry``: published versions are frozen, a version in the same major only adds
(optional fields, enum values, wider bounds or patterns; old consumers read its events that
use none of them once the new fields are dropped), a new major has an
upcaster that turns every golden example of its predecessor into a valid event.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from segmenter.registry import VERSIONS, Field, Version, describe

__all__ = ["LOCK_PATH", "check", "conforms", "load_lock", "main"]

LOCK_PATH = Path(__file__).with_name("event_schema.lock.json")


def _value_problem(f: Field, value: Any) -> str | None:
    if f.kind == "text":
        ok = isinstance(value, str) and re.fullmatch(f.pattern, value) is not None
        return None if ok else "does not match"
    if f.kind == "enum":
        return None if value in f.values else "not one of the values"
    if f.kind == "bool":
        return None if isinstance(value, bool) else "is not bool"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is not {f.kind}"
    if f.kind == "int" and not isinstance(value, int):
        return "is not int"
    if f.minimum is not None and value < f.minimum:
        return "below the minimum"
    if f.maximum is not None and value > f.maximum:
        return "above the maximum"
    return None


def conforms(doc: Mapping[str, Any], version: Version) -> str | None:
    """Why ``doc`` is not a valid document of ``version`` (field rules only), or None."""
    if doc.get("v") != version.v:
        return f"v is {doc.get('v')!r}, not {version.v}"
    for name in doc:
        if name not in version.names:
            return f"unknown field {name!r}"
    for name, f in version.fields.items():
        if name not in doc:
            if f.required:
                return f"{name} is required"
            continue
        problem = _value_problem(f, doc[name])
        if problem:
            return f"{name} {problem}"
    return None


def _widens(old: Field, new: Field, prev: Version, name: str) -> bool:
    """Whether ``new`` accepts every value ``old`` did: same kind and requiredness, an enum's
    old values first, bounds no narrower, a text pattern that accepts every golden value of
    the field (patterns cannot be compared in general; the examples stand for them)."""
    if (old.kind, old.required) != (new.kind, new.required):
        return False
    if new.values[: len(old.values)] != old.values:
        return False
    if old.minimum is not None and (new.minimum is None or new.minimum > old.minimum):
        return False
    if old.maximum is not None and (new.maximum is None or new.maximum < old.maximum):
        return False
    if new.pattern != old.pattern:
        golden = [ex[name] for ex in prev.examples if name in ex]
        return all(re.fullmatch(new.pattern, value) for value in golden)
    return True


def _same_major(prev: Version, new: Version) -> list[str]:
    out = []
    widened = []
    for name, f in prev.fields.items():
        if name not in new.fields:
            out.append(f"v{new.v}: removes {name!r} within major {new.major}")
        elif new.fields[name] != f:
            if not _widens(f, new.fields[name], prev, name):
                out.append(f"v{new.v}: changes {name!r} within major {new.major}")
            widened.append(name)
    for name in set(new.fields) - set(prev.fields):
        if new.fields[name].required:
            out.append(f"v{new.v}: adds required {name!r} within major {new.major}")
    for ex in prev.examples:  # the new version reads every old event as it is
        if problem := conforms({**ex, "v": new.v}, new):
            out.append(f"v{new.v}: v{prev.v} example {ex.get('event_id')} invalid: {problem}")
    for ex in new.examples:  # an old consumer reads the new event without the new fields
        uses_added = any(
            name in ex and _value_problem(prev.fields[name], ex[name]) for name in widened
        )
        if uses_added:  # a value only the new version has: written in the new version
            continue
        old = {k: v for k, v in ex.items() if k in prev.names} | {"v": prev.v}
        if problem := conforms(old, prev):
            out.append(f"v{new.v}: example {ex.get('event_id')} unreadable as v{prev.v}: {problem}")
    return out


def _new_major(prev: Version, new: Version) -> list[str]:
    if new.upcaster is None:
        return [f"v{new.v}: starts major {new.major} without an upcaster from v{prev.v}"]
    out = []
    for ex in prev.examples:
        try:
            up = new.upcaster(dict(ex))
        except Exception as exc:  # any failure of the upcaster is the finding
            out.append(f"v{new.v}: upcaster fails on v{prev.v} {ex.get('event_id')}: {exc!r}")
            continue
        if problem := conforms(up, new):
            out.append(f"v{new.v}: upcast v{prev.v} {ex.get('event_id')} is invalid: {problem}")
    return out


def check(lock: Mapping[str, Any], versions: Mapping[int, Version] = VERSIONS) -> list[str]:
    """Every way ``versions`` breaks the published ``lock`` or the rules; empty when none."""
    now = describe(versions)
    out = [f"v{v}: published version changed or removed" for v in lock if lock[v] != now.get(v)]
    numbers = sorted(versions)
    if numbers != list(range(1, len(numbers) + 1)):
        out.append(f"versions must be 1..n without gaps, got {numbers}")
        return out
    for n in numbers:
        version = versions[n]
        for ex in version.examples:
            if problem := conforms(ex, version):
                out.append(f"v{n}: example {ex.get('event_id')} is invalid: {problem}")
        if n == 1:
            continue
        prev = versions[n - 1]
        if version.major == prev.major:
            out.extend(_same_major(prev, version))
        elif version.major == prev.major + 1:
            out.extend(_new_major(prev, version))
        else:
            out.append(f"v{n}: major {version.major} does not follow {prev.major}")
    return out


def load_lock(path: Path = LOCK_PATH) -> dict[str, Any]:
    """The published versions (empty when there is no lock file yet)."""
    if not path.exists():
        return {}
    lock: dict[str, Any] = orjson.loads(path.read_bytes())
    return lock


def main(argv: Sequence[str] | None = None) -> int:
    """Check (or ``--write``) the lock file; the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    problems = check(load_lock())
    if problems:
        print("\n".join(problems))
        return 1
    if "--write" in args:
        LOCK_PATH.write_bytes(orjson.dumps(describe(), option=orjson.OPT_INDENT_2) + b"\n")
    print(f"compatible: versions {', '.join(map(str, VERSIONS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
