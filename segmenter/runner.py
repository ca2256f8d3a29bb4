"""Entry points behind the ``p13n`` subcommands: settings from the environment, then asyncio.

Each returns a process exit code and prints one line a human (or a script) can read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from segmenter.connection import connect
from segmenter.schema import Keys
from segmenter.settings import ProcessorSettings, SettingsError

__all__ = ["lists", "rebuild", "replay", "run"]

T = TypeVar("T")


def _settings(overrides: dict[str, str], hashes: bool = True) -> ProcessorSettings:
    env = dict(os.environ)
    env.update({k: v for k, v in overrides.items() if v})
    s = ProcessorSettings.from_env(env, hashes=hashes)
    if not s.redis_url:
        raise SettingsError(
            "P13N_REDIS_URL or P13N_REDIS_CLUSTER_NODES is required (or --redis-url)"
        )
    return s


Body = Callable[[ProcessorSettings, aioredis.Redis], Awaitable[T]]


def _main(
    name: str,
    overrides: dict[str, str],
    body: Body[T],
    show: Callable[[T], str],
    check: Callable[[ProcessorSettings], str | None] = lambda s: None,
    *,
    hashes: bool = True,
) -> int:
    """Settings, then ``check`` (a usage error or None), then ``body``; the exit code.
    ``hashes``: the command hashes segments, so it needs P13N_SEGMENT_KEY."""
    try:
        s = _settings(overrides, hashes)
        usage = check(s)
    except SettingsError as exc:
        usage = str(exc)
    if usage is not None:
        print(f"p13n {name}: {usage}", file=sys.stderr)
        return 2

    async def go() -> T:
        client = connect(s.redis_url, socket_timeout=10, max_connections=64)
        try:
            return await body(s, client)
        finally:
            await client.aclose()

    try:
        print(show(asyncio.run(go())))
    except (RedisError, OSError, RuntimeError, ValueError) as exc:
        # One line for the operator, in the command's words, not the exception's class.
        print(f"p13n {name}: {exc or 'failed'}", file=sys.stderr)
        return 1
    return 0


def _kill_hook(n: int) -> Callable[[str], None] | None:
    """Test hook: SIGKILL this process just before its n-th write step."""
    if n <= 0:
        return None
    count = [0]

    def hook(step: str) -> None:
        count[0] += 1
        if count[0] >= n:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def run(overrides: dict[str, str], name: str = "segmenter run") -> int:
    """``p13n segmenter run``: process until SIGTERM or SIGINT."""
    from segmenter.metrics import Metrics  # noqa: PLC0415
    from segmenter.processor import Processor, tune_gc  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tune_gc()

    async def body(s: ProcessorSettings, client: aioredis.Redis) -> str:
        metrics = Metrics()
        if s.metrics_port:
            from prometheus_client import start_http_server  # noqa: PLC0415

            start_http_server(s.metrics_port, "127.0.0.1", registry=metrics.registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        proc = Processor(s, client, metrics=metrics, hook=_kill_hook(s.test_kill_at_write))
        await proc.run(stop)
        return f"segmenter {s.consumer} stopped"

    return _main(name, overrides, body, str)


def lists(overrides: dict[str, str], name: str = "segmenter lists") -> int:
    """``p13n segmenter lists``: build every segment list once."""
    import time  # noqa: PLC0415

    from segmenter.lists import build_lists  # noqa: PLC0415
    from segmenter.segments import load_rules  # noqa: PLC0415

    async def body(s: ProcessorSettings, client: aioredis.Redis) -> Any:
        rules = load_rules(s.segment_rules_path or None)
        return await build_lists(client, Keys(s.prefix), rules, s, int(time.time() * 1000))

    return _main(name, overrides, body, lambda r: f"segments={r.segments} lists={r.lists}")


def _archive_exists(s: ProcessorSettings) -> str | None:
    """A usage error when the archive to read is not a directory."""
    if Path(s.archive_dir).is_dir():
        return None
    return f"--archive-dir {s.archive_dir!r}: no such directory (or set P13N_ARCHIVE_DIR)"


def replay(overrides: dict[str, str], from_ms: int, to_ms: int, name: str = "replay") -> int:
    """``p13n replay``: re-feed archived events of [from, to) into the streams."""

    def check(s: ProcessorSettings) -> str | None:
        if from_ms >= to_ms:
            return f"--from ({from_ms} ms) must be before --to ({to_ms} ms)"
        return _archive_exists(s)

    from segmenter.replay import replay as do_replay  # noqa: PLC0415

    async def body(s: ProcessorSettings, client: aioredis.Redis) -> int:
        root = Path(s.archive_dir)
        return await do_replay(
            client, Keys(s.prefix), root, partitions=s.partitions, from_ms=from_ms, to_ms=to_ms
        )

    def shown(n: int) -> str:
        return f"replayed {n} event{'' if n == 1 else 's'}"

    # A replay re-feeds the streams; the processor that reads them hashes, not the replay.
    return _main(name, overrides, body, shown, check, hashes=False)


def rebuild(overrides: dict[str, str], name: str = "rebuild") -> int:
    """``p13n rebuild``: a fresh online store from the archive, with its duration."""
    from segmenter.processor import operators_for  # noqa: PLC0415
    from segmenter.replay import rebuild as do_rebuild  # noqa: PLC0415
    from segmenter.segments import load_rules  # noqa: PLC0415

    async def body(s: ProcessorSettings, client: aioredis.Redis) -> Any:
        ops = operators_for(s, load_rules(s.segment_rules_path or None))
        root = Path(s.archive_dir)
        return await do_rebuild(client, Keys(s.prefix), root, partitions=s.partitions, ops=ops)

    return _main(name, overrides, body, lambda r: r.line(), _archive_exists)
