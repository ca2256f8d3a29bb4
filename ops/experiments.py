"""``p13n experiments``: define, start, stop, roll back and read experiments (admin API).

    create KEY --variation control --variation "due: due-first" --route home
                                 POST /v1/admin/experiments (or the whole document from
                                 --file exp.json / exp.toml; flags given too override it)
    start KEY | stop KEY         POST /v1/admin/experiments/{KEY}/start | stop
    rollback KEY --version N     POST /v1/admin/experiments/{KEY}/rollback
    results KEY                  GET /v1/admin/experiments/{KEY}/results, as a table
    list | strategies            GET /v1/admin/experiments | /v1/admin/strategies
    holdout [--share S]          GET or PUT /v1/admin/holdout (the global holdout)

A variation is written as in the console: ``name``, ``name list_variant`` or
``name: strategy``. The API's warnings (an experiment overlapping another) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ops import admin
from ops.helptext import command
from ops.target import UsageError, add_target_args, emit, resolve

__all__ = ["register", "results_text", "to_doc"]

API = ("origin", "token")
Handler = Callable[[argparse.Namespace], int]
Guard = Callable[[str, Handler], Handler]
BASE = "/v1/admin/experiments"
KEY_HELP = "the experiment's key (see `p13n experiments list`)"
# actions that name one experiment
KEYED = ("start", "stop", "rollback", "results")


def _variation(text: str) -> dict[str, Any]:
    """``"b: due-first"`` -> ``{"name": "b", "strategy": "due-first"}`` (console syntax)."""
    name, colon, strategy = (p.strip() for p in text.partition(":"))
    parts = name.split()
    if not parts or len(parts) > 2 or (colon and (len(parts) > 1 or not strategy)):
        raise UsageError(
            f"--variation {text!r}: write NAME, 'NAME LIST_VARIANT' or 'NAME: STRATEGY'"
        )
    if colon:
        return {"name": parts[0], "strategy": strategy}
    return {"name": parts[0], **({"list_variant": parts[1]} if len(parts) == 2 else {})}


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a number") from None


def _layer(text: str) -> dict[str, Any]:
    """``"rails:0:0.5"`` -> ``{"layer": "rails", "start": 0.0, "end": 0.5}``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise UsageError(f"--layer {text!r}: write LAYER:START:END, e.g. rails:0:0.5")
    return {"layer": parts[0], "start": _number(parts[1], "--layer"),
            "end": _number(parts[2], "--layer")}  # fmt: skip


def _file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"--file {path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode()) if p.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--file {path}: not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}"
        ) from None
    if not isinstance(doc, dict):
        raise UsageError(f"--file {path}: must hold one experiment object")
    return doc


def to_doc(args: argparse.Namespace) -> dict[str, Any]:
    """The create document from ``--file`` and the flags (flags win)."""
    doc = _file(args.file) if args.file else {}
    if args.key:
        doc["key"] = args.key
    if args.variation:
        doc["variations"] = [_variation(v) for v in args.variation]
    if args.weights:
        doc["weights"] = [_number(w, "--weights") for w in args.weights.split(",")]
    flags = {"name": args.name, "description": args.description, "seed": args.seed}
    doc.update({k: v for k, v in flags.items() if v is not None})
    if args.coverage is not None:
        doc["coverage"] = args.coverage
    if args.route:
        doc["routes"] = args.route
    if args.segment:
        doc["segment_names"] = args.segment
    if args.layer:
        doc["namespace"] = _layer(args.layer)
    if args.auto_stop:
        doc["auto_stop"] = True
    if "key" not in doc or "variations" not in doc:
        raise UsageError("create needs a KEY and variations (--variation, or --file)")
    return doc


def _warn(answer: dict[str, Any]) -> None:
    for w in answer.get("warnings") or []:
        print(f"warning: {w}", file=sys.stderr)


def _summary(verb: str, answer: dict[str, Any]) -> str:
    exp = answer["experiment"]
    arms = ", ".join(
        f"{v['name']}{': ' + v['strategy'] if v.get('strategy') else ''} ({w:g})"
        for v, w in zip(exp["variations"], exp["weights"], strict=False)
    )
    lines = [f"{verb} {exp['key']}: {exp['status']}, version {exp['version']}; {arms}"]
    if answer.get("notice"):
        lines.append(answer["notice"])
    return "\n".join(lines)


def _change(args: argparse.Namespace) -> int:
    target = resolve(args)
    if args.action == "create":
        answer = target.api("POST", BASE, to_doc(args))
        verb = "created"
    else:
        body = {"version": args.version} if args.action == "rollback" else None
        answer = target.api("POST", f"{BASE}/{args.key}/{args.action}", body)
        verb = {"start": "started", "stop": "stopped", "rollback": "rolled back"}[args.action]
    _warn(answer)
    emit(args, answer, _summary(verb, answer))
    return 0


def _money(v: Any) -> str:
    return "-" if v is None else f"{v:,.2f}"


def results_text(doc: dict[str, Any]) -> str:
    """The results as a table: one row per variant, then the SRM check."""
    head = (
        f"{'variant':<16} {'exposed':>8} {'conv':>6} {'rate':>8} {'rev/exposed':>11}  lift (95% CI)"
    )
    lines = [f"experiment {doc['experiment']} (bucket version {doc['bucket_version']})", head]
    for row in doc["variants"]:
        rate = row.get("conversion_rate")
        lines.append(
            f"{row['variant']:<16} {row['exposures']:>8} {row['conversions']:>6} "
            f"{'-' if rate is None else f'{rate:.2%}':>8} "
            f"{_money(row.get('revenue_per_exposed')):>11}  {admin.lift_text(row)}"
        )
    lines.append(admin.srm_text(doc["srm"]))
    return "\n".join(lines)


def _read(args: argparse.Namespace) -> int:
    target = resolve(args)
    if args.action == "list":
        docs = admin.experiments(target)
        emit(args, {"experiments": docs}, admin.experiments_text(docs))
    elif args.action == "results":
        doc = admin.results(target, args.key)
        emit(args, doc, results_text(doc))
    elif args.action == "strategies":
        doc = target.api("GET", "/v1/admin/strategies")
        lines = [f"{s['name']:<12} {s['description']}" for s in doc["strategies"]]
        emit(args, doc, "\n".join(lines))
    else:  # holdout
        if args.share is None:
            doc = target.api("GET", "/v1/admin/holdout")
        else:
            doc = target.api("PUT", "/v1/admin/holdout", {"share": args.share})
        emit(args, doc, f"global holdout: {doc['share']:.1%} of shoppers ({doc['source']})")
    return 0


def _checked(args: argparse.Namespace) -> None:
    """One-line usage errors for what argparse would answer with its usage text."""
    if args.action in KEYED and not args.key:
        raise UsageError(f"experiments {args.action} needs an experiment KEY")
    if args.action == "rollback" and args.version is None:
        raise UsageError("experiments rollback needs --version N (see `p13n experiments list`)")


def _handler(guard: Guard) -> Handler:
    def run(args: argparse.Namespace) -> int:
        body = _read if args.action in ("list", "results", "strategies", "holdout") else _change

        def checked(args: argparse.Namespace) -> int:
            _checked(args)
            return body(args)

        return guard("experiments", checked)(args)

    return run


def _create_args(a: argparse.ArgumentParser) -> None:
    a.add_argument("key", nargs="?", help="the new experiment's key (or `key` in --file)")
    a.add_argument("--file", help="the experiment document, JSON or TOML (.toml)")
    a.add_argument("--variation", action="append", default=[],
                   help="NAME, 'NAME LIST_VARIANT' or 'NAME: STRATEGY' (repeatable; first is "
                        "control; see `p13n experiments strategies`)")  # fmt: skip
    a.add_argument("--weights", help="one per variation, comma-separated (default equal)")
    a.add_argument("--coverage", type=float, help="share of eligible shoppers, 0-1 (default 1)")
    a.add_argument("--route", action="append", default=[], help="target a route (repeatable)")
    a.add_argument("--segment", action="append", default=[], help="target a segment name")
    a.add_argument("--layer", help="LAYER:START:END, a namespace range, e.g. rails:0:0.5")
    a.add_argument("--auto-stop", action="store_true",
                   help="stop it when a treatment's guardrail (degraded, slow or error rate) is "
                        "worse than control by the always-valid test")  # fmt: skip
    for flag in ("--name", "--description", "--seed"):
        a.add_argument(flag, help=f"the experiment's {flag[2:]}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], guard: Guard) -> None:
    """Add ``p13n experiments`` (``guard`` turns errors into exit codes)."""
    p = command(sub, "experiments")
    p.set_defaults(handler=_handler(guard))
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        a = actions.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + "."
        )
        add_target_args(a, *API)
        return a

    action("list", "every experiment with its status, coverage and weights")
    _create_args(action("create", "define a draft experiment from flags or a JSON/TOML file"))
    for name, summary in (
        ("start", "start an experiment (refused if it overlaps a running one it would mask)"),
        ("stop", "stop an experiment"),
        ("results", "one experiment's results per variant, as a table"),
    ):
        action(name, summary).add_argument("key", nargs="?", help=KEY_HELP)
    a = action("rollback", "restore an earlier version's definition (as a new version)")
    a.add_argument("key", nargs="?", help=KEY_HELP)
    a.add_argument("--version", type=int, help="the version to restore (required)")
    action("strategies", "the named ranking strategies a variation may pick")
    a = action("holdout", "show, or with --share set, the global holdout's share")
    a.add_argument("--share", type=float, help="share of shoppers to hold out, 0-1")
