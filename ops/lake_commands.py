"""The analytical subcommands of ``p13n``: sql, lake sync|snapshot, reconcile, export training.

Settings come from the processor's (``P13N_ARCHIVE_DIR``, ``P13N_REDIS_URL``…), overridden by
``--archive-dir`` / ``--redis-url``. Exit codes: 0 ok, 1 a failure of Redis or the disk,
2 bad usage (a bad query, a missing archive).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from ops.helptext import command
from segmenter.settings import ProcessorSettings, SettingsError

__all__ = ["register"]

Handler = Callable[[argparse.Namespace], int]


class _Usage(Exception):
    pass


def _settings(args: argparse.Namespace, hashes: bool = True) -> ProcessorSettings:
    """The processor's settings with the flags over them. ``hashes``: the command computes
    features (segments are hashed), so it needs the segment key: $P13N_SEGMENT_KEY, else the
    stack's ($P13N_STACK, else .p13n), never a default."""
    env = dict(os.environ)
    if getattr(args, "redis_url", None):
        env["P13N_REDIS_URL"] = args.redis_url
    if getattr(args, "archive_dir", None):
        env["P13N_ARCHIVE_DIR"] = args.archive_dir
    if hashes and not env.get("P13N_SEGMENT_KEY"):
        from ops.stack import stack_keys  # noqa: PLC0415
        from ops.target import stack_dir  # noqa: PLC0415

        env["P13N_SEGMENT_KEY"] = stack_keys(Path(stack_dir(env))).get("segment_hash", "")
    try:
        return ProcessorSettings.from_env(env, hashes=hashes)
    except SettingsError as exc:
        raise _Usage(str(exc)) from exc


def _archive(s: ProcessorSettings) -> Path:
    root = Path(s.archive_dir)
    if not root.is_dir():
        raise _Usage(f"--archive-dir {s.archive_dir!r}: no such directory (or P13N_ARCHIVE_DIR)")
    return root


def _with_redis(s: ProcessorSettings, body: Callable[[Any], Awaitable[str]]) -> str:
    if not s.redis_url:
        raise _Usage("P13N_REDIS_URL is required (or --redis-url)")
    from segmenter.connection import connect  # noqa: PLC0415

    async def go() -> str:
        client = connect(s.redis_url, socket_timeout=10)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _guarded(name: str, body: Callable[[argparse.Namespace], str]) -> Handler:
    def run(args: argparse.Namespace) -> int:
        from ops.sql import SqlError  # noqa: PLC0415
        from segmenter.lake import LakeError  # noqa: PLC0415

        try:
            print(body(args))
        except (_Usage, SqlError) as exc:
            print(f"p13n {name}: {exc}", file=sys.stderr)
            return 2
        except (RedisError, OSError, LakeError) as exc:
            print(f"p13n {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def _sql(args: argparse.Namespace) -> str:
    from ops.sql import QUERIES, query, render  # noqa: PLC0415
    from segmenter.lake import lake_root  # noqa: PLC0415

    if (args.sql is None) == (args.query is None):
        raise _Usage(f"give SQL text or --query ({', '.join(QUERIES)}), not both")
    if args.query is not None and args.query not in QUERIES:
        raise _Usage(f"--query {args.query!r}: one of {', '.join(QUERIES)}")
    names, rows = query(lake_root(_archive(_settings(args, hashes=False))), args.query or args.sql)
    return render(names, rows, args.format)


def _lake(args: argparse.Namespace) -> str:
    from segmenter import lake  # noqa: PLC0415

    s = _settings(args, hashes=False)  # writes and reads the lake
    root = _archive(s)
    if args.action == "sync":
        return f"lake: {lake.sync(root)} hour files written in {lake.lake_root(root)}"
    from ops.snapshot import snapshot  # noqa: PLC0415
    from segmenter.schema import Keys  # noqa: PLC0415

    async def body(client: Any) -> str:
        now = int(time.time() * 1000)
        report = await snapshot(client, Keys(s.prefix), lake.lake_root(root),
                                partitions=s.partitions, now_ms=now)  # fmt: skip
        return report.line()

    return _with_redis(s, body)


def _span(args: argparse.Namespace) -> tuple[int, int]:
    from segmenter.replay import parse_time_ms  # noqa: PLC0415

    try:
        span = parse_time_ms(args.from_time), parse_time_ms(args.to_time)
    except ValueError as exc:
        raise _Usage(f"--from/--to: {exc}") from exc
    if span[0] >= span[1]:
        raise _Usage(f"--from ({span[0]} ms) must be before --to ({span[1]} ms)")
    return span


def _reconcile(args: argparse.Namespace) -> str:
    from segmenter.processor import operators_for  # noqa: PLC0415
    from segmenter.reconcile import Window  # noqa: PLC0415
    from segmenter.reconcile_run import reconcile  # noqa: PLC0415
    from segmenter.schema import Keys  # noqa: PLC0415
    from segmenter.segments import load_rules  # noqa: PLC0415

    span = _span(args)
    if not 0 <= args.tolerance < 1:
        raise _Usage("--tolerance is a fraction: 0 (exact, the default) up to 1")
    s = _settings(args, hashes=False)  # partition aggregates only: nothing is hashed
    root = _archive(s)
    params = operators_for(s, load_rules(s.segment_rules_path or None)).partition

    async def body(client: Any) -> str:
        report = await reconcile(client, Keys(s.prefix), root, partitions=s.partitions,
                                 params=params, window=Window(*span), tolerance=args.tolerance,
                                 repair=args.repair, who="cli:p13n reconcile")  # fmt: skip
        lines = [report.line()]
        lines += [f"  {d.aggregate} p{d.partition} {d.key} {d.member}: stream {d.stream} "
                  f"batch {d.batch}" for d in report.differences[:20]]  # fmt: skip
        return "\n".join(lines)

    return _with_redis(s, body)


def _export(args: argparse.Namespace) -> str:
    from ops.export import export_training  # noqa: PLC0415
    from segmenter.lake import lake_root  # noqa: PLC0415
    from segmenter.processor import operators_for  # noqa: PLC0415
    from segmenter.segments import load_rules  # noqa: PLC0415

    span = _span(args)
    s = _settings(args)
    root = _archive(s)
    out = Path(args.out)
    if out.suffix != ".parquet":
        raise _Usage(f"--out {args.out!r}: a .parquet file")
    params = operators_for(s, load_rules(s.segment_rules_path or None)).features
    report = export_training(lake_root(root), out, params, from_ms=span[0], to_ms=span[1])
    return report.line()


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="online store (default $P13N_REDIS_URL)")
    p.add_argument("--archive-dir", help="event archive and its lake (default $P13N_ARCHIVE_DIR)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the analytical subcommands."""
    p = command(sub, "sql")
    p.add_argument("sql", nargs="?", help='SQL text, e.g. "SELECT type, count(*) FROM events…"')
    p.add_argument("--query", help="a documented query: top-sellers | funnel | repurchase")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _store_args(p)
    p.set_defaults(handler=_guarded("sql", _sql))

    p = command(sub, "lake")
    p.add_argument("action", choices=["sync", "snapshot"])
    _store_args(p)
    p.set_defaults(handler=_guarded("lake", _lake))

    p = command(sub, "reconcile")
    p.add_argument("--from", dest="from_time", required=True, help="event time, ISO 8601 or ms")
    p.add_argument("--to", dest="to_time", required=True, help="event time (exclusive)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="relative difference tolerated (default 0: integer sums agree exactly)",
    )
    p.add_argument(
        "--repair", action="store_true", help="write the batch values where they differ (audited)"
    )
    _store_args(p)
    p.set_defaults(handler=_guarded("reconcile", _reconcile))

    p = command(sub, "export")
    p.add_argument("what", choices=["training"])
    p.add_argument("--from", dest="from_time", required=True, help="event time, ISO 8601 or ms")
    p.add_argument("--to", dest="to_time", required=True, help="event time (exclusive)")
    p.add_argument("--out", default="training.parquet", help="Parquet file to write")
    _store_args(p)
    p.set_defaults(handler=_guarded("export", _export))
