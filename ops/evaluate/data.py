"""The events file, its split into history and held-out baskets, and the three baselines.

    EVENTS.jsonl --read--> valid events (a bad line is an error naming it; nothing is skipped)
                 --split--> history (replayed) + per shopper: cut time, held-out basket

``last-basket``: each shopper's last purchase session is held out, with every event from the
session's first one on (what the shopper did just before buying is not known in advance).
``time``: every event at or after the 80th percentile of event time is held out; shoppers
who buy after the cut are scored on what they buy then.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from segmenter.event import Event, Rejection, validate

__all__ = ["SPLITS", "EventsFileError", "Split", "baselines", "read_events", "split"]

SPLITS = ("last-basket", "time")
TIME_SPLIT_QUANTILE = 0.8


class EventsFileError(ValueError):
    """A line of the events file is not a valid Event v1 document."""


def read_events(path: Path) -> list[Event]:
    """Every event of the file, in event-time order (stable for equal times)."""
    out: list[Event] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EventsFileError(f"{path}:{n}: not JSON: {exc.msg}") from exc
            ev = validate(doc)
            if isinstance(ev, Rejection):
                raise EventsFileError(f"{path}:{n}: {ev.reason}")
            out.append(ev)
    if not out:
        raise EventsFileError(f"{path}: no events")
    out.sort(key=lambda e: e.ts)
    return out


@dataclass(frozen=True, slots=True)
class Split:
    """What is replayed, and what each scored shopper buys next (and when they arrive)."""

    history: list[Event]
    held_out: dict[str, frozenset[str]]
    cut_ms: dict[str, int]
    sessions: list[frozenset[str]] = field(default_factory=list)  # history's items per session


def _baskets(events: Iterable[Event]) -> dict[tuple[str, str], list[Event]]:
    """Purchases grouped by (shopper, session); a purchase without a session is its own."""
    out: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for ev in events:
        if ev.type == "purchase":
            out[(ev.user, ev.session or f"@{ev.ts}")].append(ev)
    return out


def split(events: list[Event], how: str) -> Split:
    """History and held-out baskets (see the module docstring)."""
    if how not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    baskets = _baskets(events)
    cut: dict[str, int] = {}
    held: dict[str, set[str]] = defaultdict(set)
    if how == "time":
        t = sorted(e.ts for e in events)[int(len(events) * TIME_SPLIT_QUANTILE)]
        for (user, _), evs in baskets.items():
            after = [e for e in evs if e.ts >= t]
            if after:
                cut[user] = t
                held[user].update(e.item for e in after)
    else:
        last: dict[str, tuple[int, str]] = {}
        for (user, session), evs in baskets.items():
            first = min(e.ts for e in evs)
            if first > last.get(user, (-1, ""))[0]:
                last[user] = (first, session)
        starts = {(e.user, e.session): e.ts for e in reversed(events) if e.session}
        for user, (first, session) in last.items():
            cut[user] = min(first, starts.get((user, session), first))
            held[user].update(e.item for e in baskets[(user, session)])
    bought_before = {e.user for e in events if e.type == "purchase" and e.ts < cut.get(e.user, 0)}
    cut = {u: ms for u, ms in cut.items() if u in bought_before}  # the others stay history
    history = [e for e in events if e.ts < cut.get(e.user, math.inf)]
    scored = {u: frozenset(held[u]) for u in cut}
    sessions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in history:
        if e.item:
            sessions[(e.user, e.session or f"@{e.ts}")].add(e.item)
    return Split(history, scored, cut, [frozenset(v) for v in sessions.values()])


def baselines(s: Split, k: int) -> dict[str, dict[str, list[str]]]:
    """Per baseline, per scored shopper, the top ``k`` items (computed from the history only).

    popularity: most purchased; reorder: the shopper's own purchases by count, then the most
    recent; co-occurrence: raw counts of sessions holding both items, summed over every item
    the shopper viewed or bought."""
    pop: Counter[str] = Counter(e.item for e in s.history if e.type == "purchase")
    top = sorted(pop, key=lambda i: (-pop[i], i))[:k]
    own: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    seen: dict[str, set[str]] = defaultdict(set)
    for e in s.history:
        if e.item and e.user in s.held_out:
            seen[e.user].add(e.item)
        if e.type == "purchase" and e.user in s.held_out:
            n, _ = own[e.user].get(e.item, (0, 0))
            own[e.user][e.item] = (n + 1, e.ts)
    pairs: dict[str, Counter[str]] = defaultdict(Counter)
    for items in s.sessions:
        for a in items:
            for b in items:
                if a != b:
                    pairs[a][b] += 1
    out: dict[str, dict[str, list[str]]] = {"popularity": {}, "reorder": {}, "cooccurrence": {}}
    for user in s.held_out:
        mine = own[user]
        out["popularity"][user] = top
        out["reorder"][user] = sorted(mine, key=lambda i: (-mine[i][0], -mine[i][1], i))[:k]
        scores: Counter[str] = Counter()
        for a in seen[user]:
            scores.update(pairs[a])
        out["cooccurrence"][user] = sorted(scores, key=lambda i: (-scores[i], i))[
            :k
        ]  # ties by id: no hash order
    return out
