"""Who opted out: one rule for every tier (origin, self-hosted edge, Worker).

A request opts out with ``Sec-GPC: 1`` or the opt-out cookie with any value but an explicit no.
A repeated ``Sec-GPC`` header is read as one comma-joined field (RFC 9110 section 5.3, which is
what the Workers runtime hands over), and any member ``1`` opts out, whatever the order:

    >>> opted_out("0, 1", None), opted_out("1", None), opted_out("0", "no")
    (True, True, False)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["gpc_opts_out", "join_fields", "opted_out"]

# The opt-out cookie values that mean "not opted out"; anything else opts out.
_OPTOUT_OFF = frozenset({"", "0", "false", "no"})


def join_fields(values: Iterable[str]) -> str:
    """The values of a repeated header as one field: ``["0", "1"]`` -> ``"0, 1"``."""
    return ", ".join(values)


def gpc_opts_out(field: str | None) -> bool:
    """Whether a (possibly comma-joined) ``Sec-GPC`` field value has a member ``1``."""
    if not field:
        return False
    return any(member.strip() == "1" for member in field.split(","))


def opted_out(gpc: str | None, optout_cookie: str | None) -> bool:
    """``Sec-GPC`` with a member ``1``, or an opt-out cookie with any value but an explicit no."""
    if gpc_opts_out(gpc):
        return True
    return optout_cookie is not None and optout_cookie.strip().lower() not in _OPTOUT_OFF
