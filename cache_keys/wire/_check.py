"""Small validators shared by the wire documents; each failure names its field."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cache_keys.errors import WireError

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
ITEM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")


def obj(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WireError(field, "must be an object")
    return value


def seq(value: Any, field: str, max_len: int) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise WireError(field, "must be an array")
    if len(value) > max_len:
        raise WireError(field, f"has {len(value)} entries, at most {max_len} allowed")
    return value


# The integers an API input may hold: signed 64-bit, what Redis and orjson take (orjson
# reads a longer integer literal as a float, 1e36, and cannot write it back). Symmetric:
# -2**63 - 1 is read as the float -2**63, so -2**63 itself must be out of range too.
INT64_MIN, INT64_MAX = -(2**63 - 1), 2**63 - 1


def whole_number(value: Any) -> int | None:
    """``value`` as an integer the way JSON (and JSON Schema) reads one: an int, or a float
    with no fractional part (``294.0`` is 294), within signed 64 bits; None for anything
    else, bools included.

    >>> whole_number(294.0), whole_number(7), whole_number(1.5), whole_number(True)
    (294, 7, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():  # finite: inf and nan are not
        value = int(value)
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def integer(value: Any, field: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    n = whole_number(value)
    if n is None:
        raise WireError(field, "must be an integer")
    if not lo <= n <= hi:
        raise WireError(field, f"must be between {lo} and {hi}")
    return n


def number(value: Any, field: str, lo: float, hi: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WireError(field, "must be a number")
    if not lo <= value <= hi:
        raise WireError(field, f"must be between {lo} and {hi}")
    return float(value)


def text(value: Any, field: str, pattern: re.Pattern[str] | None = None, max_len: int = 64) -> str:
    if not isinstance(value, str):
        raise WireError(field, "must be a string")
    if len(value) > max_len:
        raise WireError(field, f"longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise WireError(field, f"{value[:40]!r} does not match {pattern.pattern}")
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise WireError(field, "must be true or false")
    return value


def version(doc: Mapping[str, Any], field: str, supported: int) -> None:
    got = doc.get(field)
    if got != supported:
        raise WireError(field, f"unsupported version {got!r}; this build reads {supported}")
