"""``p13n evaluate EVENTS.jsonl``: how well the origin's rails predict what shoppers buy next.

    events file -> split (last basket or time) -> history replayed into a throwaway store
    -> the origin ranking asked for every held-out shopper, at the time they came back
    -> recall / hit rate / NDCG / coverage at k per route, beside three baselines

Also ``p13n history {grocery,fashion} OUT.jsonl``: the simulated shop's events file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from ops.evaluate.data import SPLITS, EventsFileError, baselines, read_events, split
from ops.evaluate.metrics import Progress, Scores, last_line, score, table
from ops.evaluate.replay import ReplayError, Store
from ops.helptext import command

__all__ = ["ROUTES", "Report", "evaluate", "register"]

ROUTES = ("home", "buy-again")


@dataclass(frozen=True, slots=True)
class Report:
    """Every model's figures, the table and the last line."""

    rows: dict[str, Scores]
    table: str
    line: str
    degraded: int
    # what the list build measured of the shop: how much of it repeats earlier purchases,
    # and how much the repurchase rate follows recent baskets (None: too few shoppers)
    repeat_share: float | None = None
    recent_weight: float | None = None

    @property
    def shop(self) -> str:
        """One line on the shop's behaviour as the list build measured it."""
        share = "not measured" if self.repeat_share is None else f"{self.repeat_share:.2f}"
        if self.recent_weight is None:
            weight = "not learned (too few shoppers with three baskets)"
        elif self.recent_weight == 0:
            weight = "0 (all-time frequency: no measurable gain from recent baskets)"
        else:
            weight = f"{self.recent_weight:g} (habits change: recent baskets weigh more)"
        return f"shop: repeat share {share}, recent weight {weight}"


async def evaluate(path: Path, k: int = 20, how: str = "last-basket",
                   progress: Progress | None = None) -> Report:  # fmt: skip
    """Run the whole evaluation (see the module docstring)."""
    progress = progress or Progress(sys.stderr)
    s = split(read_events(path), how)
    if not s.held_out:
        raise EventsFileError(f"{path}: no shopper buys both before and after the split")
    items = len({e.item for e in s.history if e.item})
    async with Store(progress) as store:
        await store.load(s.history)
        async with _origin(store) as client:
            await store.catalog(client, s.history)
        shop = await store.build_lists(max(e.ts for e in s.history))
        async with _origin(store) as client:  # a fresh origin: its snapshot holds the lists
            answers = await store.ask(client, s.cut_ms, ROUTES, k)
        degraded = store.degraded
    answers.update(baselines(s, k))
    rows = {name: score(recs, s.held_out, k, items) for name, recs in answers.items()}
    return Report(rows, table(rows, k), last_line(rows), degraded,
                  _float(shop.get("repeat_share")), _float(shop.get("recent_weight")))  # fmt: skip


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


@asynccontextmanager
async def _origin(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real origin app on the store, the app's lifespan around it."""
    app: Any = store.app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {store.token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://origin.eval",
                                     headers=headers) as client:  # fmt: skip
            yield client


def _cmd_evaluate(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        report = asyncio.run(evaluate(Path(args.events), args.k, args.split))
    except (OSError, EventsFileError, ReplayError) as exc:
        print(f"p13n evaluate: {exc}", file=sys.stderr)
        return 2
    print(report.table, file=out)
    print(report.shop, file=out)
    if report.degraded:
        print(f"warning: {report.degraded} answers were degraded (Redis over budget)", file=out)
    print(report.line, file=out)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from ops.shop.history import HistoryShape, write  # noqa: PLC0415

    shape = HistoryShape(shoppers=args.shoppers, items=args.items, days=args.days, seed=args.seed,
                         habit_days=args.habit_days)  # fmt: skip
    n = write(Path(args.out), args.kind, shape)
    print(f"wrote {n} events to {args.out}")
    return 0


def _days(text: str) -> float:
    """A number of days, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number of days: {text}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``evaluate`` and ``history`` subcommands."""
    p = command(sub, "evaluate")
    p.add_argument("events", help="JSON Lines of Event v1 (docs: README, Evaluation)")
    p.add_argument("--k", type=int, default=20, choices=range(1, 101), metavar="K",
                   help="list length scored (1-100, default 20)")  # fmt: skip
    p.add_argument("--split", choices=SPLITS, default="last-basket", help="what is held out")
    p.set_defaults(handler=_cmd_evaluate)
    p = command(sub, "history")
    p.add_argument("kind", choices=("grocery", "fashion"))
    p.add_argument("out", help="the JSON Lines file to write")
    p.add_argument("--shoppers", type=int, default=300)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--habit-days", type=_days, default=0.0, metavar="DAYS",
                   help="grocery: a habit lasts about DAYS (staples replaced, favourites "
                   "recent; default 0: habits last for good)")  # fmt: skip
    p.set_defaults(handler=_cmd_history)
