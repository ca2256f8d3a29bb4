"""``p13n import``: bring a shop's history and catalog in on day one.

p13n import events FILE...     history into the partition streams (``ops.imports.events``)
p13n import catalog FILE       products through the admin API (``ops.imports.catalog``)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ops.target import OpsError, UsageError, emit, resolve

__all__ = ["register"]


def _mapping(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, name = pair.partition("=")
        if not sep or not column or not name:
            raise UsageError(f"--map {pair!r}: use COLUMN=FIELD (or COLUMN=- to ignore it)")
        out[column] = name
    return out


def _events(args: argparse.Namespace) -> int:
    from ops.imports.events import ImportOptions, ImportStalled, import_events  # noqa: PLC0415
    from ops.imports.progress import Progress  # noqa: PLC0415
    from segmenter.connection import connect_sync  # noqa: PLC0415
    from segmenter.processor import tune_gc  # noqa: PLC0415
    from segmenter.shoppers import ShopperIds  # noqa: PLC0415

    target = resolve(args)
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    try:
        ids = ShopperIds.from_env(os.environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    opts = ImportOptions(
        keys=target.keys, partitions=target.partitions, ids=ids, fmt=args.format,
        mapping=_mapping(args.map), max_backlog=args.max_backlog, stall_s=args.stall_s,
        workers=args.workers,
    )  # fmt: skip
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    tune_gc()  # millions of short-lived objects, as in the processor
    client = connect_sync(target.need("redis_url"))
    try:
        report = import_events(client, paths, opts, progress=Progress(sys.stderr if show else None))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except ImportStalled as exc:
        raise OpsError(str(exc)) from exc
    finally:
        client.close()
    emit(args, report.to_json(), report.text())
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from ops.imports.catalog import import_catalog, report_text  # noqa: PLC0415

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    doc = import_catalog(resolve(args), path)
    emit(args, doc, report_text(path, doc))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``p13n import events`` and ``p13n import catalog``."""
    from ops.commands import API, STORE, _action  # noqa: PLC0415
    from ops.commands import _guarded as guard  # noqa: PLC0415
    from ops.helptext import command  # noqa: PLC0415

    top = command(sub, "import")
    kinds = top.add_subparsers(dest="kind", required=True, metavar="{events,catalog}")
    p = _action(kinds, "events", "history files straight into the partition streams", *STORE)
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines or CSV, maybe gzipped")
    p.add_argument("--format", choices=["jsonl", "csv"], help="default: by file name (.csv)")
    p.add_argument(
        "--map", action="append", default=[], metavar="COLUMN=FIELD",
        help="CSV: the event field of a column (COLUMN=- ignores it); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--max-backlog", type=int, default=200_000,
        help="wait while a partition has more entries not yet applied (200,000)",
    )  # fmt: skip
    p.add_argument(
        "--stall-s", type=float, default=60.0,
        help="give up (resumable) when the processor applies nothing this long",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=0,
        help="processes that parse and check lines (default 0: in the writing process)",
    )  # fmt: skip
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help="draw the progress bar on stderr (default: when it is a terminal)",
    )  # fmt: skip
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(handler=guard("import events", _events))

    p = _action(kinds, "catalog", "products (names, images, categories) via the admin API", *API)
    p.add_argument("file", metavar="FILE", help="CSV (.csv) or JSON Lines, maybe gzipped")
    p.set_defaults(handler=guard("import catalog", _catalog))
