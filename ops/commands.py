"""The operations subcommands of ``p13n``: status, lag, dlq, purge, experiments, probe,
backup and restore.

Each finds the running system through ``ops.target`` (``--stack DIR`` or explicit
URLs), prints human-readable text (``--json`` for machines) and returns the exit code:
0 ok, 1 a part is down or refused, 2 bad usage. An unreachable part is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ops import admin, backup, deadletters, health
from ops.target import OpsError, UsageError, add_target_args, emit, resolve

__all__ = ["register"]

Handler = Callable[[argparse.Namespace], int]


def _guarded(name: str, body: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except UsageError as exc:
            print(f"p13n {name}: {exc}", file=sys.stderr)
            return 2
        except OpsError as exc:
            print(f"p13n {name}: {exc}", file=sys.stderr)
            return 1

    return run


def _status(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from ops.costs import price_per_gb  # noqa: PLC0415

    try:
        price = price_per_gb(os.environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    ok, doc = health.status(resolve(args), price)
    emit(args, doc, health.status_text(doc))
    return 0 if ok else 1


def _lag(args: argparse.Namespace) -> int:
    rows = health.partition_lag(resolve(args))
    emit(args, {"partitions": rows, "total": sum(r["lag"] or 0 for r in rows)},
         health.lag_text(rows))  # fmt: skip
    return 0


def _probe(args: argparse.Namespace) -> int:
    ok, doc = health.probe(resolve(args), args.route)
    emit(args, doc, health.probe_text(doc))
    return 0 if ok else 1


def _dlq(args: argparse.Namespace) -> int:
    target = resolve(args)
    if args.action == "list":
        doc = deadletters.list_letters(target, args.count)
        emit(args, doc, deadletters.list_text(doc))
        return 0
    if args.action == "show":
        if not args.id:
            raise UsageError("dlq show needs an ID (see `p13n dlq list`)")
        shown, raw = deadletters.show(target, args.id)
        if args.raw:
            sys.stdout.buffer.write(raw)
            return 0
        emit(args, shown, deadletters.show_text(shown))
        return 0
    rows = deadletters.requeue(target, args.id, args.all)
    emit(args, {"results": rows}, deadletters.requeue_text(rows))
    return 0 if all(r["requeued"] for r in rows) else 1


def _purge(args: argparse.Namespace) -> int:
    target = resolve(args)
    tags = admin.purge_tags(args.sku, args.cat, args.seg, args.route, args.all)
    record = admin.purge(target, tags, "hard" if args.hard else "soft", args.reason)
    if not args.wait:
        emit(args, record, admin.purge_text(record))
        return 0
    if not args.json:
        print(admin.purge_text(record), flush=True)

    def progress(doc: dict[str, Any]) -> None:
        if not args.json:
            print(admin.progress_line(doc), flush=True)

    final = admin.wait_applied(target, record["id"], args.timeout, progress)
    if args.json:
        emit(args, final, "")
    return 0


def _experiments(args: argparse.Namespace) -> int:
    target = resolve(args)
    if args.action == "list":
        docs = admin.experiments(target)
        emit(args, {"experiments": docs}, admin.experiments_text(docs))
        return 0
    if not args.key:
        raise UsageError("experiments results needs an experiment KEY")
    doc = admin.results(target, args.key)
    emit(args, doc, admin.results_text(doc))
    return 0


def _backup(args: argparse.Namespace) -> int:
    doc = backup.backup(resolve(args), Path(args.file))
    counts = {s: len(doc[s]) for s in ("experiments", "catalog", "generations", "item_mask")}
    human = f"wrote {args.file}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    emit(args, {"file": args.file, "counts": counts}, human)
    return 0


def _restore(args: argparse.Namespace) -> int:
    report = backup.restore(resolve(args), Path(args.file))
    emit(args, report, backup.restore_text(report))
    return 0


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    body: Handler,
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    add_target_args(p)
    p.set_defaults(handler=_guarded(name, body))
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operations subcommands to the ``p13n`` parser."""
    _add(sub, "status", "health of every part, lag, DLQ depth, edge hit ratio", _status)
    _add(sub, "lag", "consumer lag per partition, with owner, offset and watermark", _lag)

    p = _add(sub, "dlq", "dead letters: list, show one, requeue after a fix", _dlq)
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "requeue"])
    p.add_argument("id", nargs="?", help="dead letter id (show, requeue)")
    p.add_argument("--count", type=int, default=20, help="entries to list (default 20)")
    p.add_argument("--all", action="store_true", help="requeue every dead letter that is valid")
    p.add_argument("--raw", action="store_true", help="show: write only the original bytes")

    p = _add(sub, "purge", "invalidate cached fragments by tag, optionally wait for edges", _purge)
    for flag, what in (("--sku", "an item"), ("--cat", "a category"),
                       ("--seg", "a hashed segment"), ("--route", "a route")):  # fmt: skip
        p.add_argument(flag, action="append", default=[], help=f"purge {what} (repeatable)")
    p.add_argument("--all", action="store_true", help="purge everything")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--soft", action="store_true", help="mark stale (default)")
    mode.add_argument("--hard", action="store_true", help="make unservable at once")
    p.add_argument("--reason", default="p13n purge", help="recorded in the audit log")
    p.add_argument("--wait", action="store_true", help="wait until every live edge applied it")
    p.add_argument("--timeout", type=float, default=30.0, help="--wait limit in s (default 30)")

    p = _add(sub, "experiments", "list experiments, or one's results", _experiments)
    p.add_argument("action", choices=["list", "results"])
    p.add_argument("key", nargs="?", help="experiment key (results)")

    p = _add(sub, "probe", "a synthetic personalization request through the edge", _probe)
    p.add_argument("--route", default="home", help="rail route (default home)")

    p = _add(sub, "backup", "write the admin state to one JSON file", _backup)
    p.add_argument("file", help="backup file to write")
    p = _add(sub, "restore", "validate a backup, then replace the admin state with it", _restore)
    p.add_argument("file", help="backup file to read")
