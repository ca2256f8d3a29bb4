"""``p13n up``, ``p13n simulate`` and ``p13n demo``: the local system and its main job."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import httpx

from ops.helptext import command
from ops.report import Verdict, baseline, summarize
from ops.shop import World
from ops.simulate import Run, Simulator
from ops.stack import DEFAULT_DIR, STOP_TIMEOUT_S, Stack, StackError, StackInfo, running_info
from ops.supervisor import Supervisor
from ops.target import STACK_ENV, add_stack_arg, stack_dir

__all__ = ["register"]

SUPERVISE_EVERY_S = 0.2  # how often `p13n up` looks for a child that exited


def _print_info(info: StackInfo) -> None:
    print(f"edge      {info.edge_url}   (rails: /p13n/v1/rail/home)", flush=True)
    print(f"shop      {info.edge_url}/shop/   (the storefront; ?debug=1 shows the debug panel)")
    print(f"origin    {info.origin_url}   (console: /console, API: /openapi.json)")
    print(
        f"metrics   edge {info.edge_admin_url}/metrics  processor "
        f"{info.processor_metrics_url}/metrics  origin {info.origin_url}/metrics"
    )
    print(f"redis     {info.redis_url}")
    print(
        f"state     {info.directory}/stack.json (admin token: {info.admin_token[:6]}…; "
        "all tokens are in stack.json)",
        flush=True,
    )


def _stop_grace_s() -> float:
    """SIGTERM's grace for the children when the stack stops (``P13N_STOP_GRACE_S``)."""
    return float(os.environ.get("P13N_STOP_GRACE_S", STOP_TIMEOUT_S))


def _supervisor(stack: Stack) -> Supervisor:
    """The supervisor of ``stack``'s children and its Redis: says each exit and restart on
    stderr and in the child's log, and keeps ``stack.json`` current (``p13n status``)."""

    def say(name: str, message: str) -> None:
        # A closed terminal (the SIGHUP that reloads) must not stop the supervision.
        with contextlib.suppress(OSError):
            print(f"p13n up: {message}", file=sys.stderr, flush=True)
        stack.log_line(name, message)

    sup = Supervisor(
        respawn=stack.respawn,
        process=stack.process,
        names=stack.supervised,
        say=say,
        changed=lambda: stack.write_info(sup.doc()),
        replace_with=lambda name: stack.respawn(name, stack.stop_grace_s),
    )
    stack.write_info(sup.doc())
    return sup


def _cmd_up(args: argparse.Namespace) -> int:
    stack = Stack(
        directory=Path(args.dir),
        redis_url=os.environ.get("REDIS_URL"),
        workers=args.workers,
        stop_grace_s=_stop_grace_s(),
    )
    got = {"stop": 0, "reload": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        got["reload" if signum == signal.SIGHUP else "stop"] = signum

    # Ctrl-C and kill stop everything; SIGHUP (logrotate's postrotate, `p13n keys`) restarts
    # the parts one by one with keys.json read again and their logs opened again; a child's
    # exit only restarts that child.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        info = stack.start()
    except StackError as exc:
        print(f"p13n up: {exc}", file=sys.stderr)
        return 1
    _print_info(info)
    print("running; a part that exits is restarted; SIGHUP reloads; Ctrl-C stops everything",
          flush=True)  # fmt: skip
    try:
        sup = _supervisor(stack)
        while not got["stop"]:
            if got["reload"]:
                got["reload"] = 0
                stack.reload(sup.replace)
            sup.tick()
            time.sleep(SUPERVISE_EVERY_S)
    finally:
        stack.stop()
    with contextlib.suppress(OSError):
        print("stopped", flush=True)
    return 0


def _run_simulator(info: StackInfo, args: argparse.Namespace, *, keep_on_ctrl_c: bool) -> Run:
    """The simulated shop's traffic at ``--rate`` for ``--duration`` against ``info``. The
    run's figures so far come back whatever ends it (an error is noted in them; so is
    Ctrl-C with ``keep_on_ctrl_c``: ``simulate`` summarizes, ``demo`` stops its stack)."""
    sim = Simulator(
        info,
        World(seed=args.seed),
        rate_per_s=args.rate,
        duration_s=args.duration,
        progress=not args.no_progress,
    )
    try:
        return asyncio.run(sim.main())
    except KeyboardInterrupt:
        if not keep_on_ctrl_c:
            raise
        sim.run.interrupted = "interrupted"
    except (httpx.HTTPError, RuntimeError) as exc:
        sim.run.interrupted = (str(exc).splitlines() or [type(exc).__name__])[0]
    return sim.run


def _simulate(info: StackInfo, args: argparse.Namespace) -> int:
    try:
        before = baseline(info)  # the parts' counters are the stack's; the run reports its own
    except KeyboardInterrupt:
        print("p13n simulate: interrupted before the run began", file=sys.stderr)
        return 130
    verdict = summarize(_run_simulator(info, args, keep_on_ctrl_c=True), info, before)
    print("\n".join(verdict.lines), flush=True)
    print(verdict.last_line, flush=True)
    return 0 if verdict.ok else 1


def _cmd_simulate(args: argparse.Namespace) -> int:
    try:
        info = running_info(Path(args.stack or stack_dir()))
    except StackError as exc:
        print(f"p13n simulate: {exc}", file=sys.stderr)
        return 1
    return _simulate(info, args)


class _Stopped(BaseException):
    """SIGTERM or SIGHUP during ``p13n demo``: unwinds like Ctrl-C (KeyboardInterrupt)."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Start everything in a throwaway directory, simulate, summarize, stop; the verdict is
    printed last, after every child process has exited. Ctrl-C, SIGTERM or SIGHUP stop every
    child before the directory goes."""
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGHUP, _raise_stopped)
    with tempfile.TemporaryDirectory(prefix="p13n-demo-") as tmp:
        stack = Stack(directory=Path(tmp), workers=1, stop_grace_s=_stop_grace_s())
        try:
            verdict = _kept(stack, args) if args.keep else _demo_run(stack, args)
        except (KeyboardInterrupt, _Stopped) as exc:
            print(f"demo FAILED interrupted ({type(exc).__name__} {exc}); stopping", flush=True)
            return 130
        except StackError as exc:
            print(f"demo FAILED the system did not start: {exc}")
            return 1
        except Exception as exc:  # any failure is the demo's verdict
            print(f"demo FAILED {type(exc).__name__}: {exc}")
            return 1
        finally:
            # A second Ctrl-C must not cut the stop short and leave children behind.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            stack.stop()
    print("\n".join(verdict.lines), flush=True)
    print(verdict.last_line, flush=True)
    return 0 if verdict.ok else 1


def _demo_run(stack: Stack, args: argparse.Namespace) -> Verdict:
    info = stack.start()
    _print_info(info)
    before = baseline(info)
    run = _run_simulator(info, args, keep_on_ctrl_c=False)
    time.sleep(2)  # let the processor apply the last batches
    return summarize(run, info, before)


def _kept(stack: Stack, args: argparse.Namespace) -> Verdict:
    """``demo --keep``: the run, then the stack serves until Ctrl-C or SIGTERM; a run that
    failed once the stack was up leaves it up too, to look at."""
    try:
        verdict = _demo_run(stack, args)
    except Exception as exc:
        if stack.info is None:  # the system never started: nothing to keep
            raise
        first = (str(exc).splitlines() or [type(exc).__name__])[0]  # the verdict is one line
        verdict = Verdict([], f"demo FAILED {first}", ok=False)
    _keep(stack, verdict)
    return verdict


def _keep(stack: Stack, verdict: Verdict) -> None:
    """The verdict now, then wait for Ctrl-C or SIGTERM."""
    print("\n".join(verdict.lines), flush=True)
    print(verdict.last_line, flush=True)
    url = stack.info.edge_url if stack.info else "?"
    print(f"kept up: the storefront is {url}/shop/ ; Ctrl-C stops everything", flush=True)
    try:
        while True:
            signal.pause()  # until a signal's handler raises
    except (KeyboardInterrupt, _Stopped):
        print("stopping", flush=True)


def _traffic_args(p: argparse.ArgumentParser, duration: float) -> None:
    p.add_argument("--rate", type=float, default=40.0, help="visits per second (default 40)")
    p.add_argument(
        "--duration",
        type=float,
        default=duration,
        help=f"seconds of traffic (default {duration:.0f})",
    )
    p.add_argument("--seed", type=int, default=7, help="world seed (default 7)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``up``, ``simulate`` and ``demo``."""
    p = command(sub, "up")
    p.add_argument(
        "--dir",
        default=stack_dir(),
        help=f"state, logs and data (default ${STACK_ENV}, else {DEFAULT_DIR})",
    )
    p.add_argument("--workers", type=int, default=1, help="origin worker processes")
    p.set_defaults(handler=_cmd_up)
    p = command(sub, "simulate")
    add_stack_arg(p)
    _traffic_args(p, 60.0)
    p.set_defaults(handler=_cmd_simulate)
    p = command(sub, "demo")
    _traffic_args(p, 60.0)
    p.add_argument(
        "--keep", action="store_true", help="leave the stack up after the summary (Ctrl-C stops)"
    )
    p.set_defaults(handler=_cmd_demo)
