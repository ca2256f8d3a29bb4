"""Cache-Control (RFC 9111 §5.2) and CDN-Cache-Control (RFC 9213) directive parsing.

    >>> parse_directives('public, max-age=60, stale-while-revalidate="30", no-cache="Set-Cookie"')
    {'public': None, 'max-age': '60', 'stale-while-revalidate': '30', 'no-cache': 'Set-Cookie'}

Names are case-insensitive and lowercased; the first occurrence of a directive wins; quoted
values are unquoted. ``delta_seconds`` reads a delta-seconds value and treats anything
invalid as absent (RFC 9111 §1.2.2: caches must treat invalid values conservatively, which
callers do by falling back to "not fresh").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge.proxy.sfields import parse_dictionary

__all__ = ["ResponseDirectives", "delta_seconds", "parse_directives", "parse_targeted"]

# RFC 9111 §1.2.2: values above 2**31 are treated as 2**31.
_DELTA_MAX = 2**31


def _split_commas(value: str) -> list[str]:
    """Split on commas outside double quotes."""
    parts, buf, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_directives(values: str | Iterable[str] | None) -> dict[str, str | None]:
    """Directives of one or more header field lines, first occurrence winning."""
    if values is None:
        return {}
    lines = [values] if isinstance(values, str) else list(values)
    out: dict[str, str | None] = {}
    for line in lines:
        for part in _split_commas(line):
            name, sep, raw = part.strip().partition("=")
            name = name.strip().lower()
            if not name or name in out:
                continue
            val: str | None = raw.strip() if sep else None
            if val is not None and len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            out[name] = val
    return out


def delta_seconds(value: str | None) -> int | None:
    """A delta-seconds value, or None when absent or invalid."""
    if value is None or not value.isdigit():
        return None
    return min(int(value), _DELTA_MAX)


_DELTA_DIRECTIVES = frozenset({"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"})
_FLAG_DIRECTIVES = frozenset(
    {"no-store", "public", "must-revalidate", "proxy-revalidate", "immutable", "no-transform"}
)
_QUALIFIABLE = frozenset({"no-cache", "private"})  # a flag, or a string of field names


def parse_targeted(lines: Iterable[str]) -> dict[str, str | None] | None:
    """A targeted field (``CDN-Cache-Control``, RFC 9213 §2.1) as directives; None when it is
    absent, empty, not a Structured Field Dictionary, or a known directive has the wrong type
    (``max-age="60"``, ``no-store=1``): the cache then ignores the whole field.

        >>> parse_targeted(["max-age=60, no-store"])
        {'max-age': '60', 'no-store': None}
        >>> parse_targeted(['max-age="60"']) is None
        True
    """
    joined = ", ".join(lines)
    if not joined.strip():
        return None
    try:
        members = parse_dictionary(joined)
    except ValueError:
        return None
    out: dict[str, str | None] = {}
    for name, value in members.items():
        if name in _DELTA_DIRECTIVES:
            if type(value) is not int or value < 0:
                return None
            out[name] = str(value)
        elif name in _FLAG_DIRECTIVES or name in _QUALIFIABLE:
            if value is True:
                out[name] = None
            elif name in _QUALIFIABLE and type(value) is str:
                out[name] = value
            else:
                return None
        else:
            out[name] = None if value is True else str(value)  # unknown: kept, never used
    return out or None


@dataclass(frozen=True, slots=True)
class ResponseDirectives:
    """The directives that govern a shared cache, after choosing the targeted field.

    RFC 9213: when CDN-Cache-Control is present (and is a valid Structured Field Dictionary
    with at least one directive) this cache uses it and ignores Cache-Control for its own
    caching decisions; an invalid one is ignored as if absent (``parse_targeted``).
    """

    raw: dict[str, str | None]
    targeted: bool

    @classmethod
    def from_headers(
        cls, cache_control: Iterable[str], cdn_cache_control: Iterable[str]
    ) -> ResponseDirectives:
        cdn = parse_targeted(cdn_cache_control)
        if cdn is not None:
            return cls(cdn, targeted=True)
        return cls(parse_directives(list(cache_control)), targeted=False)

    def has(self, name: str) -> bool:
        return name in self.raw

    def seconds(self, name: str) -> int | None:
        return delta_seconds(self.raw.get(name))

    @property
    def no_store(self) -> bool:
        return "no-store" in self.raw

    @property
    def private(self) -> bool:
        # A qualified private="Set-Cookie" still forbids a shared cache from storing those
        # fields; we do not store partial responses, so any private means not stored.
        return "private" in self.raw

    @property
    def no_cache(self) -> bool:
        return "no-cache" in self.raw

    @property
    def must_revalidate(self) -> bool:
        # s-maxage also implies proxy-revalidate (RFC 9111 §5.2.2.10); that needs no case of
        # its own here because this cache serves stale only under an explicit
        # stale-while-revalidate or stale-if-error grant, which is the origin's permission.
        return "must-revalidate" in self.raw or "proxy-revalidate" in self.raw
