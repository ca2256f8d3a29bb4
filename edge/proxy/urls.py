"""Request-target normalization for cache keys.

    >>> normalize_target("/a/%7euser/./b/../c?x=%2f&y")
    '/a/~user/c?x=%2F&y'

Dot segments removed (RFC 3986 §5.2.4), percent-encodings of unreserved characters decoded
and the rest uppercased (§6.2.2), an empty query dropped. Parameter order is kept: reordering
could change meaning for some origins. Absolute-form targets keep only path and query: the
host never comes from the request, so a forged Host or X-Forwarded-Host cannot pick a key.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["normalize_target"]

_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pct(match: re.Match[str]) -> str:
    ch = chr(int(match.group(1), 16))
    return ch if ch in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(out) > 1:
                out.pop()
        elif seg != ".":
            out.append(seg)
    result = "/".join(out)
    if path.endswith(("/.", "/..")):
        result += "/"
    return result if result.startswith("/") else "/" + result


def normalize_target(target: str) -> str:
    """The normalized path and query of a request target."""
    parts = urlsplit(target)
    path = _remove_dot_segments(_PCT.sub(_pct, parts.path or "/"))
    query = _PCT.sub(_pct, parts.query)
    return f"{path}?{query}" if query else path
