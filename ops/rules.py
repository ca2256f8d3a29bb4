"""``p13n rules``: merchandising rules through the admin API.

rules list                                   GET /v1/admin/rules
rules add NAME --pin SKU --position 1        POST /v1/admin/rules
rules rm NAME [--when 2026-12-24T08:00:00Z]  DELETE /v1/admin/rules/{NAME}
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote, urlencode

from ops.commands import _guarded  # the one way a command turns its errors into exit codes
from ops.helptext import command
from ops.target import UsageError, add_target_args, emit, resolve

__all__ = ["register", "rule_body", "rules_text"]

KINDS = ("pin", "boost", "bury", "block")


def rule_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST body from ``p13n rules add``'s options."""
    kinds = [k for k in KINDS if getattr(args, k)]
    if len(kinds) != 1:
        raise UsageError("say exactly one of --pin, --boost, --bury or --block")
    kind = kinds[0]
    target = getattr(args, kind)
    body: dict[str, Any] = {"name": args.name, "kind": kind}
    if target.startswith("cat:"):
        body["category"] = target.removeprefix("cat:")
    else:
        body["skus"] = [s for s in target.split(",") if s]
    if kind == "pin":
        body["position"] = args.position
    if kind in ("boost", "bury"):
        if args.factor is None:
            raise UsageError(f"--{kind} needs --factor")
        body["factor"] = args.factor
    for field, value in (("routes", args.route), ("segments", args.segment)):
        if value:
            body[field] = value
    for field, value in (("start_ms", args.start), ("end_ms", args.end), ("when", args.when)):
        if value:
            body[field] = int(value) if value.isdigit() else value
    if args.reason:
        body["reason"] = args.reason
    return body


def _target(rule: dict[str, Any]) -> str:
    return ",".join(rule["skus"]) if rule["skus"] else f"cat:{rule['category']}"


def rules_text(rules: list[dict[str, Any]]) -> str:
    """One line per rule: name, kind, target, scope, live or not."""
    if not rules:
        return "no merchandising rules"
    lines = []
    for r in rules:
        how = {"pin": f" at {r['position']}", "boost": f" x{r['factor']:g}",
               "bury": f" x{r['factor']:g}"}.get(r["kind"], "")  # fmt: skip
        scope = ",".join(r["routes"]) or "every route"
        if r["segments"]:
            scope += " / " + ",".join(r["segments"])
        state = "live" if r.get("live") else "not live"
        lines.append(f"{r['name']}: {r['kind']} {_target(r)}{how} on {scope} ({state})")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    target = resolve(args)
    if args.action == "list":
        doc = target.api("GET", "/v1/admin/rules")
        emit(args, doc, rules_text(doc["rules"]))
    elif args.action == "add":
        doc = target.api("POST", "/v1/admin/rules", rule_body(args))
        human = (f"scheduled {doc['scheduled']['id']} for {doc['scheduled']['due_ms']}"
                 if "scheduled" in doc else
                 f"added {args.name}; edges follow soft purge {doc['invalidation']}")  # fmt: skip
        emit(args, doc, human)
    else:
        path = f"/v1/admin/rules/{quote(args.name, safe='')}"
        if args.when:
            path += "?" + urlencode({"when": args.when})
        doc = target.api("DELETE", path)
        human = (
            f"scheduled {doc['scheduled']['id']}"
            if "scheduled" in doc
            else f"removed {args.name}; edges follow soft purge {doc['invalidation']}"
        )
        emit(args, doc, human)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``p13n rules`` to the parser."""
    p = command(sub, "rules")
    p.set_defaults(handler=_guarded("rules", _run))
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("list", help="every rule, live or not", description="Every rule.")
    add_target_args(a, "origin", "token")
    a = actions.add_parser("add", help="add a rule (now, or at --when)",
                           description="Add a merchandising rule, now or at --when.")  # fmt: skip
    add_target_args(a, "origin", "token")
    a.add_argument("name", help="the rule's name (a-z, 0-9, '-')")
    for kind in KINDS:
        a.add_argument(f"--{kind}", metavar="SKUS|cat:NAME",
                       help=f"{kind} these skus (comma-separated) or a category")  # fmt: skip
    a.add_argument("--position", type=int, default=1, help="a pin's place, from 1")
    a.add_argument("--factor", type=float, help="a boost's (>1) or bury's (<1) factor")
    a.add_argument("--route", action="append", help="only on this route (repeatable)")
    a.add_argument("--segment", action="append", help="only for this segment (repeatable)")
    a.add_argument("--start", help="start: epoch ms or RFC 3339")
    a.add_argument("--end", help="end: epoch ms or RFC 3339")
    a.add_argument("--when", help="create it at this time (epoch ms or RFC 3339)")
    a.add_argument("--reason", help="why (kept with the rule)")
    a = actions.add_parser(
        "rm", help="remove a rule (now, or at --when)",
        description="Remove a merchandising rule, now or at --when.",
    )  # fmt: skip
    add_target_args(a, "origin", "token")
    a.add_argument("name", help="the rule's name (see `p13n rules list`)")
    a.add_argument("--when", help="remove it at this time (epoch ms or RFC 3339)")
