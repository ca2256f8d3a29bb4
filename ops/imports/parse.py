"""Lines of a history file -> checked events, the collector's way; pure, so a batch can run in
a worker process (``parse_batch`` takes and returns only picklable values).

    (7, b'{"v": 1, "event_id": "o1", "type": "view", "user": "cust_1", ...}')
        -> Parsed(line=7, entry=<msgpack>, user="cust_1", partition=3, ...)
    (8, b'{"v": 1, "user": "a b", ...}')
        -> Bad(line=8, raw=b'{"v": 1, ...}', field="user", reason="user: must be ...")

The checks are the collector's: ``segmenter.event.validate``, the shopper-id policy
(``ShopperIds.check_event``), and no event time beyond the allowed clock skew. CSV cells are
typed for their field first (``ops.imports.records`` describes the mapping).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgpack
import orjson

from segmenter import event
from segmenter.event import Event, Rejection
from segmenter.precheck import Precheck
from segmenter.schema import partition_of
from segmenter.shoppers import ShopperIds

__all__ = ["Bad", "ParseConfig", "Parsed", "parse_batch"]

DAY_MS = 86_400_000
_INTS = ("qty", "v")


@dataclass(frozen=True, slots=True)
class ParseConfig:
    """What a worker needs to check one file's lines."""

    fmt: str
    columns: tuple[str | None, ...]
    digest: str
    ids: ShopperIds
    partitions: int
    skew_limit_ms: int


class Parsed(NamedTuple):
    """A valid event, encoded for its stream, with what the importer decides on."""

    line: int
    entry: bytes
    user: str
    anon: str
    type: str
    session: str
    dedupe: tuple[str, int]  # (event id, UTC day): the processor's duplicate rule
    partition: int


class Bad(NamedTuple):
    """A line that is no valid event: its bytes, the field at fault and the reason."""

    line: int
    raw: bytes
    field: str
    reason: str
    user: str


def _typed(field: str, cell: str) -> Any:
    """A CSV cell as its field's type; ValueError saying what was expected."""
    if field == "ts":
        if cell.isdigit():
            return int(cell)
        try:
            at = datetime.fromisoformat(cell)
        except ValueError:
            raise ValueError(f"{cell[:40]!r} is neither epoch milliseconds nor ISO 8601") from None
        return round((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)
    if field == "price":
        try:
            return float(cell)
        except ValueError:
            raise ValueError(f"{cell[:40]!r} is not a number") from None
    if field in _INTS:
        if not cell.lstrip("-").isdigit():
            raise ValueError(f"{cell[:40]!r} is not an integer")
        return int(cell)
    if field == "bot":
        if cell.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{cell[:40]!r} is not true or false")
        return cell.lower() in ("true", "1")
    return cell


def _csv_doc(cfg: ParseConfig, n: int, line: bytes) -> dict[str, Any] | Rejection:
    try:
        cells = next(csv.reader([line.decode("utf-8")], strict=True))
    except (UnicodeDecodeError, csv.Error) as exc:
        return Rejection("$", f"not a CSV line: {exc}")
    if len(cells) != len(cfg.columns):
        return Rejection("$", f"{len(cells)} cells; the header has {len(cfg.columns)}")
    # The current version: a CSV row may hold a customer id only it carries (v3); its event
    # is written in the oldest version that carries it all the same.
    doc: dict[str, Any] = {"v": event.VERSION, "type": "purchase"}
    for field, cell in zip(cfg.columns, cells, strict=True):
        if field is None or cell == "":
            continue
        try:
            doc[field] = _typed(field, cell)
        except ValueError as exc:
            return Rejection(field, str(exc))
    doc.setdefault("event_id", f"imp-{cfg.digest[:12]}-{n}")
    return doc


def _doc(cfg: ParseConfig, n: int, line: bytes) -> dict[str, Any] | Rejection:
    if cfg.fmt == "csv":
        return _csv_doc(cfg, n, line)
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejection("$", f"not JSON: {exc}")
    return doc if isinstance(doc, dict) else Rejection("$", "an event must be an object")


# Per worker process: shopper ids repeat across a history, so each is checked and placed once.
_PROBLEMS: dict[ShopperIds, dict[str, str | None]] = {}
_PARTITIONS: dict[int, dict[str, int]] = {}
# Per worker process and policy: the compiled fast path (``segmenter.precheck``), which only
# ever accepts what ``check`` accepts and leaves every other document to it.
_PRECHECKS: dict[tuple[ShopperIds, int], Precheck] = {}
_CACHE_MAX = 500_000


def _cache(store: dict[Any, dict[str, Any]], key: Any) -> dict[str, Any]:
    found = store.get(key)
    if found is None or len(found) > _CACHE_MAX:
        found = store[key] = {}
    return found


def check(cfg: ParseConfig, doc: dict[str, Any]) -> Event | Rejection:
    """The collector's checks of one event document."""
    ev = event.validate(doc)
    if type(ev) is Rejection:
        return ev
    assert isinstance(ev, Event)
    if ev.ts > cfg.skew_limit_ms:
        return Rejection("ts", "in the future beyond the allowed clock skew")
    if ev.type == "identify":
        return cfg.ids.check_event(ev)
    problems = _cache(_PROBLEMS, cfg.ids)
    problem = problems.get(ev.user, "")
    if problem == "":
        problem = problems[ev.user] = cfg.ids.problem(ev.user)
    return ev if problem is None else Rejection("user", problem)


def parsed(ev: Event, line: int, partitions: int, doc: dict[str, Any] | None = None) -> Parsed:
    """An event as the importer carries it: the stream entry is the msgpack of the checked
    document itself when there is one (the processor validates it again on reading)."""
    entry = msgpack.packb(doc) if doc is not None else event.encode(ev)
    places = _cache(_PARTITIONS, partitions)
    p = places.get(ev.user)
    if p is None:
        p = places[ev.user] = partition_of(ev.user, partitions)
    return Parsed(line, entry, ev.user, ev.anon, ev.type, ev.session,
                  (ev.event_id, ev.ts // DAY_MS), p)  # fmt: skip


def _precheck(cfg: ParseConfig) -> Precheck:
    key = (cfg.ids, cfg.skew_limit_ms)
    found = _PRECHECKS.get(key)
    if found is None:
        _PRECHECKS.clear()  # one file at a time: the previous file's limit is done with
        found = _PRECHECKS[key] = Precheck(cfg.skew_limit_ms)
    return found


def parse_batch(cfg: ParseConfig, batch: list[tuple[int, bytes]]) -> list[Parsed | Bad]:
    """Each ``(line number, bytes)`` as a valid event or a bad line, in order."""
    out: list[Parsed | Bad] = []
    fast = _precheck(cfg)
    places = _cache(_PARTITIONS, cfg.partitions)
    packb = msgpack.Packer().pack  # one packer per batch: packb makes one per call
    for n, line in batch:
        doc = _doc(cfg, n, line)
        if type(doc) is dict:
            hit = fast.accept(doc)
            if hit is not None:  # the common case: no Event built, no generic checks
                eid, kind, user, ts, session = hit
                p = places.get(user)
                if p is None:
                    p = places[user] = partition_of(user, cfg.partitions)
                out.append(Parsed(n, packb(doc), user, "", kind, session, (eid, ts // DAY_MS), p))
                continue
        result = doc if type(doc) is Rejection else check(cfg, doc)  # type: ignore[arg-type]
        if type(result) is Rejection:
            named = doc.get("user") if isinstance(doc, dict) else None
            named = named if isinstance(named, str) and len(named) <= 64 else ""
            out.append(Bad(n, line, result.field, result.reason, named))
        else:
            fast.learn(doc)  # type: ignore[arg-type]
            out.append(parsed(result, n, cfg.partitions, doc))  # type: ignore[arg-type]
    return out
