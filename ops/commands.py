"""The operations subcommands of ``p13n``: status, lag, dlq, purge, experiments, probe,
backup and restore.

Each finds the running system through ``ops.target`` (``--stack DIR``, explicit URLs or
``P13N_*``); every change of admin state is an admin API call. Each prints human-readable
text (``--json`` for machines) and returns the exit code:
0 ok, 1 a part is down or refused, 2 bad usage. An unreachable part is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ops import admin, backup, deadletters, experiments, status
from ops.helptext import command
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
    ok, doc = status.status(resolve(args), price)
    emit(args, doc, status.status_text(doc))
    return 0 if ok else 3 if doc.get("stopped") else 1  # 3: LSB's "not running"


def _lag(args: argparse.Namespace) -> int:
    rows = status.partition_lag(resolve(args))
    doc = {"partitions": rows, "behind": sum(r["behind"] for r in rows)}
    emit(args, doc, status.lag_text(rows))
    return 0


def _probe(args: argparse.Namespace) -> int:
    ok, doc = status.probe(resolve(args), args.route)
    emit(args, doc, status.probe_text(doc))
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
    if args.action == "drop":
        rows = deadletters.drop(target, args.id, args.all, args.reason)
        emit(args, {"results": rows}, deadletters.drop_text(rows))
        return 0
    rows = deadletters.requeue(target, args.id, args.all, args.reason)
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


def _backup(args: argparse.Namespace) -> int:
    doc = backup.backup(resolve(args), Path(args.file))
    counts = backup.counts(doc)
    human = f"wrote {args.file}: {backup.counts_text(counts)}"
    emit(args, {"file": args.file, "counts": counts}, human)
    return 0


def _restore(args: argparse.Namespace) -> int:
    report = backup.restore(resolve(args), Path(args.file))
    emit(args, report, backup.restore_text(report))
    return 0


# The parts each kind of command talks to (its options name only those).
API = ("origin", "token")
STORE = ("redis", "keys")


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    body: Handler,
    *parts: str,
) -> argparse.ArgumentParser:
    p = command(sub, name)
    add_target_args(p, *parts)
    p.set_defaults(handler=_guarded(name, body))
    return p


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    *parts: str,
) -> argparse.ArgumentParser:
    p = actions.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    add_target_args(p, *parts)
    return p


def _add_dlq(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = command(sub, "dlq")
    p.set_defaults(handler=_guarded("dlq", _dlq))
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = _action(actions, "list", "the newest dead letters, with reason and source", *STORE)
    a.add_argument("--count", type=int, default=20, help="entries to list (default 20)")
    a = _action(actions, "show", "one dead letter with its original bytes", *STORE)
    a.add_argument("id", nargs="?", help="dead letter id (see `p13n dlq list`)")
    a.add_argument("--raw", action="store_true", help="write only the original bytes")
    for name, verb in (("requeue", "requeue to its partition after a fix"),
                       ("drop", "delete for good (junk)")):  # fmt: skip
        a = _action(actions, name, f"{verb}: one ID, one --reason, or --all (audited)", *API)
        a.add_argument("id", nargs="?", help="dead letter id (see `p13n dlq list`)")
        a.add_argument("--all", action="store_true", help=f"{name} every dead letter")
        a.add_argument("--reason", help=f"{name} the dead letters of this reason")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operations subcommands to the ``p13n`` parser."""
    _add(sub, "status", _status, "origin", "edge-admin", *STORE)
    _add(sub, "lag", _lag, *STORE)
    _add_dlq(sub)

    p = _add(sub, "purge", _purge, *API)
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

    experiments.register(sub, _guarded)

    p = _add(sub, "probe", _probe, "edge")
    p.add_argument("--route", default="home", help="rail route (default home)")

    p = _add(sub, "backup", _backup, *API)
    p.add_argument("file", help="backup file to write")
    p = _add(sub, "restore", _restore, *API)
    p.add_argument("file", help="backup file to read")
