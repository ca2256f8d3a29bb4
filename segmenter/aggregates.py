"""Per-partition decisions and aggregates: the pure operator ``apply(state, entries)``.

For each entry, in stream order, exactly one disposition::

    skip       stream id <= the partition's applied offset (a redelivery): ack only
    dead       undecodable, unknown version, over the delivery limit, or from the future
    erased     the shopper has an erasure tombstone: dropped, never archived
    duplicate  event id already applied on that UTC day (a client retry)
    late       event time below the watermark: shopper features and experiments only
    applied    everything, including the windowed aggregates (popularity, co-visitation and
               each item's own weight in sessions, which normalizes co-visitation)

Every aggregate increment is an integer, so partial sums are exact and the result does not
depend on batch boundaries; the effects are written with the new offset in one atomic step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from segmenter.event import Event, Rejection
from segmenter.schema import POPULARITY_BUCKET_S, SESSION_GAP_MS, SESSION_ITEMS_MAX

__all__ = [
    "COVIS_WEIGHTS",
    "EXPERIMENT_EVENTS",
    "POPULARITY_WEIGHTS",
    "Entry",
    "PartitionEffects",
    "PartitionParams",
    "PartitionState",
    "apply",
    "parse_id",
]

DAY_MS = 86_400_000
POPULARITY_WEIGHTS = {"view": 1, "add_to_cart": 3, "purchase": 5}
COVIS_WEIGHTS = {"view": 1, "add_to_cart": 2, "purchase": 3}
# The event types whose shopper's experiment record the batch reads.
EXPERIMENT_EVENTS = frozenset({"exposure", "purchase", "add_to_cart", "identify"})


def parse_id(stream_id: str) -> tuple[int, int]:
    """ "1700000000000-3" -> (1700000000000, 3)."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True, unsafe_hash=True)  # not frozen, as ``Event``: one per entry read
class Entry:
    """One stream entry: its id, original bytes, and the decoded event or the rejection;
    never mutated."""

    stream_id: str
    raw: bytes
    event: Event | None
    rejection: Rejection | None = None
    key: tuple[int, int] = (-1, -1)  # parsed stream id, filled in

    def __post_init__(self) -> None:
        if self.key == (-1, -1):
            self.key = parse_id(self.stream_id)


@dataclass(frozen=True, slots=True)
class PartitionParams:
    allowed_lateness_ms: int
    max_clock_skew_ms: int
    revenue_cap_cents: int = 100_000  # ProcessorSettings.experiment_revenue_cap_cents


@dataclass(slots=True)
class PartitionState:
    """What decisions need: offset, max event time, and the batch's lookups."""

    offset: str = "0-0"
    max_ts: int = 0
    # (UTC day, event id) -> stream id that applied it; only the ids this batch asks about.
    seen: dict[tuple[int, str], str] = field(default_factory=dict)
    # "user|session" -> (last event ms, items newest first)
    sessions: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    # user -> experiment -> [variant, first exposure ms, converted ms or 0, revenue cents,
    # orders, added to cart ms or 0] (records from before revenue was kept have 3 fields)
    exposed: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)
    # identify: the anonymous shopper's exposures, read from its own partition (input only)
    linked_exposed: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)


@dataclass(slots=True)
class PartitionEffects:
    """The writes of one batch, plus what the shopper features and the archive receive."""

    ack: list[str] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    eids: dict[int, list[str]] = field(default_factory=dict)
    pop: dict[int, Counter[str]] = field(default_factory=dict)
    covis: dict[str, dict[str, int]] = field(default_factory=dict)
    occ: Counter[str] = field(default_factory=Counter)
    exp: dict[str, Counter[str]] = field(default_factory=dict)
    sessions: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    exposed: dict[str, dict[str, list[int | str]]] = field(default_factory=dict)
    dead: list[tuple[Entry, Rejection]] = field(default_factory=list)
    accepted: list[Entry] = field(default_factory=list)
    archive: list[Entry] = field(default_factory=list)


def _covisit(st: PartitionState, fx: PartitionEffects, ev: Event) -> None:
    weight = COVIS_WEIGHTS.get(ev.type)
    if not ev.session or not weight:
        return
    skey = f"{ev.user}|{ev.session}"
    last_ts, items = st.sessions.get(skey, (0, []))
    if last_ts < st.max_ts - SESSION_GAP_MS:  # expired (the commit may not have pruned it)
        last_ts, items = 0, []
    item, covis = ev.item, fx.covis
    fx.occ[item] += weight  # the norm of the item's co-visitation: sim = co / sqrt(occ occ)
    mine: dict[str, int] | None = None
    for other in items:
        if other != item:
            if mine is None:
                mine = covis.get(item)
                if mine is None:
                    mine = covis[item] = {}
            mine[other] = mine.get(other, 0) + weight
            theirs = covis.get(other)  # not setdefault: it would build a dict per pair
            if theirs is None:
                theirs = covis[other] = {}
            theirs[item] = theirs.get(item, 0) + weight
    items = [item, *[i for i in items if i != item]][:SESSION_ITEMS_MAX]
    st.sessions[skey] = fx.sessions[skey] = (max(last_ts, ev.ts), items)


def _windowed(st: PartitionState, fx: PartitionEffects, ev: Event) -> None:
    weight = POPULARITY_WEIGHTS.get(ev.type)
    if weight and ev.item:
        bucket = ev.ts // (POPULARITY_BUCKET_S * 1000)
        counts = fx.pop.get(bucket)
        if counts is None:
            counts = fx.pop[bucket] = Counter()
        counts[ev.item] += weight * (ev.qty if weight == 5 else 1)
        _covisit(st, fx, ev)


def _carry_exposures(st: PartitionState, fx: PartitionEffects, ev: Event) -> None:
    """At sign-in the customer takes over the anonymous shopper's exposures (not counted
    again: the anonymous id was the exposed unit), so purchases after the login convert."""
    theirs = st.linked_exposed.get(ev.anon)
    if not theirs:
        return
    mine = dict(st.exposed.get(ev.user) or {})
    added = {key: list(rec) for key, rec in theirs.items() if key not in mine}
    if added:
        st.exposed[ev.user] = fx.exposed[ev.user] = {**mine, **added}


def _purchase(
    counts: Counter[str], rec: list[int | str], ev: Event, cap: int
) -> None:  # fmt: skip
    """One purchase's effect on the per-shopper moments of its variant (``rec`` updated).

    A shopper's revenue is the sum of their orders: the variant keeps the sum of the capped
    per-shopper revenue, its square, the orders' square and their product, each moved by the
    difference between the shopper's new and old contribution (integers, so exact)."""
    variant, rev, orders = rec[0], int(rec[3]), int(rec[4])
    cents = round(ev.price * 100) * ev.qty
    old, new = min(rev, cap), min(rev + cents, cap)
    counts[f"o:{variant}"] += 1
    counts[f"r:{variant}"] += cents
    counts[f"rc:{variant}"] += new - old
    counts[f"rq:{variant}"] += new * new - old * old
    counts[f"oq:{variant}"] += 2 * orders + 1
    counts[f"ro:{variant}"] += new * (orders + 1) - old * orders
    rec[3], rec[4] = rev + cents, orders + 1
    if not rec[2]:
        counts[f"c:{variant}"] += 1
        counts[f"d:{ev.ts // DAY_MS}:c:{variant}"] += 1
        rec[2] = ev.ts


def _after_exposure(st: PartitionState, fx: PartitionEffects, ev: Event, cap: int) -> None:
    """A purchase or an add to cart: counted for every experiment exposed before it."""
    mine = st.exposed.get(ev.user)
    if not mine:
        return
    mine = dict(mine)
    for key, seen in mine.items():
        rec = [*seen, 0, 0, 0][:6]  # older records lack the moments
        if ev.ts < int(rec[1]):
            continue
        counts = fx.exp.setdefault(key, Counter())
        if ev.type == "purchase":
            _purchase(counts, rec, ev, cap)
        elif not rec[5]:
            counts[f"a:{rec[0]}"] += 1
            rec[5] = ev.ts
        else:
            continue
        mine[key] = rec
    st.exposed[ev.user] = fx.exposed[ev.user] = mine


def _experiments(st: PartitionState, fx: PartitionEffects, ev: Event, cap: int) -> None:
    if ev.type == "identify":
        _carry_exposures(st, fx, ev)
        return
    if ev.bot or ev.type not in EXPERIMENT_EVENTS:
        return
    if ev.type != "exposure":
        _after_exposure(st, fx, ev, cap)
        return
    # Guardrail: accepted exposure events (one per shopper, experiment and UTC day: the edge's
    # event id) count in ``e:``; a degraded answer's marker (its own daily id) counts in
    # ``g:`` and nothing else, the answer's exposure being its own event. Duplicates and
    # redeliveries never reach here, so both are exactly once.
    counts = fx.exp.setdefault(ev.experiment, Counter())
    if ev.degraded:
        counts[f"g:{ev.variant}"] += 1
        return
    counts[f"e:{ev.variant}"] += 1
    mine = dict(st.exposed.get(ev.user) or {})
    seen = mine.get(ev.experiment)
    if seen is None:
        mine[ev.experiment] = [ev.variant, ev.ts, 0, 0, 0, 0]
        counts[f"x:{ev.variant}"] += 1
        counts[f"d:{ev.ts // DAY_MS}:x:{ev.variant}"] += 1
        counts[f"k:{cap}"] += 1  # the cap each shopper's revenue is counted under
    elif ev.ts < int(seen[1]):
        mine[ev.experiment] = [seen[0], ev.ts, *seen[2:]]
    else:
        return
    st.exposed[ev.user] = fx.exposed[ev.user] = mine


def _dispose(
    st: PartitionState, fx: PartitionEffects, entry: Entry, tombstoned: frozenset[str],
    p: PartitionParams,
) -> str:  # fmt: skip
    ev = entry.event
    if ev is None:
        fx.dead.append((entry, entry.rejection or Rejection("$", "undecodable")))
        return "dead"
    if ev.user in tombstoned:  # first: an erased shopper's events are not even dead-lettered
        return "erased"
    if ev.ts > entry.key[0] + p.max_clock_skew_ms:
        fx.dead.append((entry, Rejection("ts", "in the future beyond the allowed clock skew")))
        return "dead"
    fx.archive.append(entry)
    day_key = (ev.ts // DAY_MS, ev.event_id)
    if day_key in st.seen:
        return "duplicate"
    st.seen[day_key] = entry.stream_id
    eids = fx.eids.get(day_key[0])
    if eids is None:
        eids = fx.eids[day_key[0]] = []
    eids += (ev.event_id, entry.stream_id)
    fx.accepted.append(entry)
    _experiments(st, fx, ev, p.revenue_cap_cents)
    if ev.ts < st.max_ts - p.allowed_lateness_ms:
        fx.late["total"] += 1
        fx.late[ev.type] += 1
        return "late"
    st.max_ts = max(st.max_ts, ev.ts)
    _windowed(st, fx, ev)
    return "applied"


def apply(
    state: PartitionState,
    entries: Sequence[Entry] | Iterable[Entry],
    tombstoned: frozenset[str],
    p: PartitionParams,
) -> tuple[PartitionState, PartitionEffects]:
    """Decide every entry and fold the batch's partition effects (the state is not mutated)."""
    st = PartitionState(
        offset=state.offset,
        max_ts=state.max_ts,
        seen=dict(state.seen),
        sessions=dict(state.sessions),
        exposed=dict(state.exposed),
        linked_exposed=state.linked_exposed,
    )
    fx = PartitionEffects()
    offset = parse_id(st.offset)
    for entry in entries:
        fx.ack.append(entry.stream_id)
        if entry.key <= offset:
            fx.counters["skip"] += 1
            continue
        fx.counters[_dispose(st, fx, entry, tombstoned, p)] += 1
        st.offset, offset = entry.stream_id, entry.key
    return st, fx
