"""Fresh, stale or expired: the freshness of a stored entry (RFC 9111 and RFC 5861 terms).

    age <= max-age                         FRESH    serve
    age <= max-age + stale-while-revalidate STALE    serve, revalidate in the background
    age <= max-age + stale-if-error         EXPIRED  go to the origin; serve only if it fails
    otherwise, or hard-purged               DEAD     never serve

Generations: a soft purge (the config's soft generation of any of the entry's tags, or of
``*``, above the one recorded at store time) makes a fresh entry STALE. A hard purge makes
it DEAD at once, even for stale-if-error. The item mask removes out-of-stock items from every
answer (``rerank``); when the mask leaves fewer than ``k`` servable items a fresh entry at
least ``MASK_RECHECK_S`` old is STALE, so the short list is replaced without waiting for its
max-age (and a list the origin has not refreshed yet is not refetched on every request).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

from cache_keys.wire import EdgeConfig, RoutePolicy
from edge.entry import Entry
from edge.rerank import prepare

__all__ = ["MASK_RECHECK_S", "Freshness", "State", "freshness", "purge_state", "purged"]


class State(StrEnum):
    """What may be done with a stored entry."""

    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"
    DEAD = "dead"


class Freshness(NamedTuple):
    """The decision and its numbers (for ``Cache-Status``); a named tuple, as it is made
    per request."""

    state: State
    age_s: int
    ttl_s: int
    soft_purged: bool = False
    hard_purged: bool = False


def purge_state(entry: Entry, config: EdgeConfig) -> tuple[bool, bool]:
    """(soft purged, hard purged) of an entry against the config's generations."""
    return purged(entry.gens, config.generations)


def purged(
    recorded: Mapping[str, tuple[int, int]], current: Mapping[str, tuple[int, int]]
) -> tuple[bool, bool]:
    """(soft purged, hard purged): whether any tag's current (soft, hard) generation is above
    the one recorded when the entry was stored (tags not recorded are not the entry's)."""
    soft = hard = False
    # Walk the smaller side: usually the config names a handful of purged tags.
    pairs = (
        ((t, g, recorded.get(t)) for t, g in current.items())
        if len(current) <= len(recorded)
        else ((t, current.get(t, (0, 0)), g) for t, g in recorded.items())
    )
    for _tag, (c_soft, c_hard), rec in pairs:
        if rec is None:
            continue
        if c_hard > rec[1]:
            return True, True
        soft = soft or c_soft > rec[0]
    return soft, hard


def _mask_starves(entry: Entry, config: EdgeConfig, k: int) -> bool:
    """Whether the mask (not the list itself) leaves fewer than ``k`` items."""
    mask = config.item_mask
    if not mask:
        return False
    items = entry.seglist.items
    names = prepare(items).names
    masked = len(mask & names)  # set intersection walks the smaller side
    return masked > 0 and len(items) - masked < k


# A list the mask starves is refetched at most this often: when the origin's list is starved
# too (it has not caught up with the stock-out yet), refetching on every request would only
# hammer it. The mask itself applies to every answer at once either way.
MASK_RECHECK_S = 5


def freshness(entry: Entry, policy: RoutePolicy, config: EdgeConfig, now_ms: int) -> Freshness:
    """Decide what may be done with ``entry`` now."""
    age_s = max(0, (now_ms - entry.stored_at_ms) // 1000)
    ttl_s = policy.max_age_s - age_s
    soft, hard = purge_state(entry, config)
    if hard:
        return Freshness(State.DEAD, age_s, ttl_s, soft, hard)
    starved = age_s >= MASK_RECHECK_S and _mask_starves(entry, config, policy.k)
    if age_s <= policy.max_age_s and not soft and not starved:
        return Freshness(State.FRESH, age_s, ttl_s)
    if age_s <= policy.max_age_s + policy.swr_s:
        return Freshness(State.STALE, age_s, ttl_s, soft)
    if age_s <= policy.max_age_s + policy.sie_s:
        return Freshness(State.EXPIRED, age_s, ttl_s, soft)
    return Freshness(State.DEAD, age_s, ttl_s, soft)
