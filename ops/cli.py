"""The ``p13n`` command: every subcommand listed here works.

Subcommands register in ``_build_parser``; each handler takes the parsed arguments and
returns the process exit code. Heavy imports happen inside handlers so ``p13n --help``
stays fast.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from ops.helptext import command
from ops.target import add_stack_arg

Handler = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return metadata.version("p13n-edge")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _cmd_redis_server(args: argparse.Namespace) -> int:
    from ops.local.redis import RedisServerError, find_redis_server  # noqa: PLC0415

    try:
        print(find_redis_server())
    except RedisServerError as exc:
        print(f"p13n redis-server: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    print(secrets.token_urlsafe(args.bytes))
    return 0


def _cmd_hseg(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from cache_keys import hash_segment  # noqa: PLC0415
    from ops.stack import stack_keys  # noqa: PLC0415
    from ops.target import stack_dir  # noqa: PLC0415

    raw = args.key or stack_keys(Path(args.stack or stack_dir())).get("segment_hash")
    raw = raw or os.environ.get("P13N_SEGMENT_KEY")
    if not raw:
        print(
            "p13n hseg: no segment key: pass --key, --stack DIR of a `p13n up` stack, or set "
            "P13N_SEGMENT_KEY",
            file=sys.stderr,
        )
        return 2
    key = raw.encode("utf-8")
    if len(key) < 16:
        print("p13n hseg: --key must be at least 16 bytes", file=sys.stderr)
        return 2
    print(hash_segment(args.segment, key))
    return 0


def _cmd_edge(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    import dataclasses  # noqa: PLC0415
    import os  # noqa: PLC0415

    from edge.errors import SettingsError  # noqa: PLC0415
    from edge.proxy.server import serve  # noqa: PLC0415
    from edge.proxy.settings import ProxySettings  # noqa: PLC0415
    from edge.proxy.workers import peer_admins, supervise, worker_edge_id  # noqa: PLC0415

    try:
        settings = ProxySettings.from_env(
            origin_url=args.origin, redis_url=args.redis_url, port=args.port
        )
    except SettingsError as exc:
        print(f"p13n edge: {exc}", file=sys.stderr)
        return 2
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        print("p13n edge: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.worker_index is None:
        mode = "personalization on" if settings.core else "plain HTTP cache (no SEGMENT_KEYS)"
        admin = f":{args.admin_port}" + (f"+i (worker i of {workers})" if workers > 1 else "")
        print(
            f"edge {settings.edge_id}: http://{args.host}:{args.port} -> {settings.origin_url}"
            f" ({mode}); {workers} worker(s); metrics on {admin}",
            flush=True,
        )
    if workers > 1 and args.worker_index is None:
        return supervise(lambda i: _edge_worker_argv(args, i, workers), workers)
    admin_port = args.admin_port
    peers: list[str] = []
    if args.worker_index is not None:
        settings = dataclasses.replace(
            settings, edge_id=worker_edge_id(settings.edge_id, args.worker_index)
        )
        admin_port = args.admin_port + args.worker_index if args.admin_port else 0
        if args.worker_index == 0 and args.admin_port:  # its /metrics: the sum of all
            peers = peer_admins(args.host, args.admin_port, workers)
    run = serve(
        settings,
        args.host,
        args.port,
        admin_port,
        reuse_port=args.worker_index is not None,
        peers=peers,
    )
    try:
        import uvloop  # noqa: PLC0415 - the fast loop when installed (uvicorn[standard])
    except ImportError:
        asyncio.run(run)
    else:
        uvloop.run(run)
    return 0


def _edge_worker_argv(args: argparse.Namespace, index: int, workers: int) -> list[str]:
    """The command line of worker ``index`` of ``p13n edge --workers N``."""
    argv = [sys.executable, "-m", "ops.cli", "edge", "--host", args.host, "--port", str(args.port)]
    argv += ["--admin-port", str(args.admin_port), "--worker-index", str(index)]
    argv += ["--workers", str(workers)]
    if args.origin:
        argv += ["--origin", args.origin]
    if args.redis_url:
        argv += ["--redis-url", args.redis_url]
    return argv


def _cmd_origin(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from origin.server import serve  # noqa: PLC0415
    from origin.settings import Settings, SettingsError, local_secrets  # noqa: PLC0415

    # A trusted local run without secrets gets random ones, the same in every worker.
    os.environ.update(local_secrets(os.environ))
    try:
        Settings.from_env()  # fail fast, with the variable's name, before forking workers
    except SettingsError as exc:
        print(f"p13n origin: {exc}", file=sys.stderr)
        return 2
    serve(args.host, args.port, args.workers, args.access_log, args.log_level)
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """The store, archive and segment key of ``args``: explicit flags, else the stack's
    (``--stack`` or $P13N_STACK, else ``.p13n``: its ``stack.json`` while it runs, its
    ``keys.json`` always), else the processor's own P13N_* settings."""
    from ops.stack import StackError, load_info, stack_keys  # noqa: PLC0415
    from ops.target import stack_dir  # noqa: PLC0415

    redis_url, archive = args.redis_url or "", args.archive_dir or ""
    directory = Path(args.stack or stack_dir())
    try:
        info = load_info(directory)
    except (StackError, OSError, ValueError, TypeError):
        info = None  # no stack there: the environment's settings apply
    if info is not None:
        redis_url = redis_url or info.redis_url
        archive = archive or str(Path(info.directory) / "archive")
    try:
        key = stack_keys(directory).get("segment_hash", "")
    except (OSError, ValueError):
        key = ""
    # The stack's key, never a default: what this command hashes, its origin must know.
    return {"P13N_REDIS_URL": redis_url, "P13N_ARCHIVE_DIR": archive, "P13N_SEGMENT_KEY": key}


def _cmd_segmenter(args: argparse.Namespace) -> int:
    from segmenter import runner  # noqa: PLC0415

    env = _overrides(args)
    name = f"segmenter {args.action}"
    return runner.run(env, name) if args.action == "run" else runner.lists(env, name)


def _cmd_replay(args: argparse.Namespace) -> int:
    from segmenter import runner  # noqa: PLC0415
    from segmenter.replay import parse_time_ms  # noqa: PLC0415

    try:
        span = parse_time_ms(args.from_time), parse_time_ms(args.to_time)
    except ValueError as exc:
        print(f"p13n replay: --from/--to: {exc}", file=sys.stderr)
        return 2
    return runner.replay(_overrides(args), *span, name="replay")


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from segmenter import runner  # noqa: PLC0415

    return runner.rebuild(_overrides(args), "rebuild")


def _store_args(p: argparse.ArgumentParser) -> None:
    add_stack_arg(p)
    where = "the stack's, else "
    p.add_argument("--redis-url", help=f"online store (default {where}$P13N_REDIS_URL)")
    p.add_argument("--archive-dir", help=f"event archive (default {where}$P13N_ARCHIVE_DIR)")


def _add_segmenter(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = command(sub, "segmenter")
    p.add_argument(
        "action",
        choices=["run", "lists"],
        help="run: process the streams until SIGTERM; lists: build every segment list once",
    )
    _store_args(p)
    p.set_defaults(handler=_cmd_segmenter)

    p = command(sub, "replay")
    p.add_argument("--from", dest="from_time", required=True, help="ISO 8601 or epoch ms")
    p.add_argument("--to", dest="to_time", required=True, help="ISO 8601 or epoch ms (excl.)")
    _store_args(p)
    p.set_defaults(handler=_cmd_replay)

    p = command(sub, "rebuild")
    _store_args(p)
    p.set_defaults(handler=_cmd_rebuild)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p13n",
        description="Edge-first retail personalization: operations CLI.",
        epilog="`p13n COMMAND --help` describes a command, with examples. Settings: "
        "docs/CONFIGURATION.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = command(sub, "redis-server")
    p.set_defaults(handler=_cmd_redis_server)

    p = command(sub, "keygen")
    p.add_argument("--bytes", type=int, default=32, help="entropy in bytes (default 32)")
    p.set_defaults(handler=_cmd_keygen)

    p = command(sub, "hseg")
    p.add_argument("segment", help="segment name, e.g. returning|grocery|mid")
    p.add_argument(
        "--key", help="the segment hashing key (default: the stack's, else $P13N_SEGMENT_KEY)"
    )
    add_stack_arg(p)
    p.set_defaults(handler=_cmd_hseg)

    p = command(sub, "edge")
    p.add_argument("--origin", help="origin base URL (default $ORIGIN_URL)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8081, help="listen port (default 8081)")
    p.add_argument(
        "--admin-port",
        type=int,
        default=9081,
        help="port of /metrics and /healthz (default 9081; 0 disables)",
    )
    p.add_argument("--redis-url", help="Redis for pushed purges (default $P13N_EDGE_REDIS_URL)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="edge processes sharing the port with SO_REUSEPORT, each with its own store, purge"
        " subscription and heartbeat; /metrics on the admin port sums them all, worker i's own"
        " on admin port + i at /metrics/worker (default: cores)",
    )
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=_cmd_edge)

    p = command(sub, "origin")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--access-log", action="store_true", help="structured JSON access log")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    p.set_defaults(handler=_cmd_origin)
    _add_segmenter(sub)
    from ops.commands_run import register as register_run  # noqa: PLC0415

    register_run(sub)
    from ops import keyring  # noqa: PLC0415 - keys

    keyring.register(sub)
    from ops import commands  # noqa: PLC0415 - status, lag, dlq, purge, probe, backup…

    commands.register(sub)
    from ops import evaluate  # noqa: PLC0415 - evaluate, history

    evaluate.register(sub)

    from ops import lake_commands  # noqa: PLC0415 - sql, lake, reconcile, export

    lake_commands.register(sub)

    from ops import imports  # noqa: PLC0415 - import events, import catalog

    imports.register(sub)
    from ops import rules  # noqa: PLC0415 - rules list, add, rm

    rules.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``p13n`` console script."""
    args = _build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
