"""Memory over time: a fresh ``p13n up`` under ``p13n simulate`` for ``--minutes``.

Starts the whole stack in a throwaway directory (its own Redis), runs the simulated shop at
``--rate`` visits per second for the whole run, and every ``--sample-s`` seconds reads the
resident memory (RSS, from /proc) of each tier: the pid ``stack.json`` names for it plus all
its lasting descendants (uvicorn's workers; not a job's child of a few seconds), re-read
every time so a supervised restart is followed.
Beside the simulator a probe shopper (cookies kept, one rail request every
``PROBE_EVERY_S``) times the edge's answer as a shopper sees it under that load.

The growth of each tier is the least-squares slope of its RSS over the second half of the
run (the first half is warm-up: caches filling, lists being built), in MB per hour; the
edge's p99 is the probe's over the same half.

What fills during warm-up, measured under this simulation (40 visits/s, 1,500 shoppers, 400
SKUs, ~109 segment lists rebuilt every 10 s), and its bound:

- processor: the shopper-state cache. One-visit shoppers (bots given an id by the edge) add
  ~1.8 new ids/s, so the default bound of 20,000 states (``P13N_SHOPPER_CACHE_SIZE``; and
  ``P13N_SHOPPER_CACHE_BYTES``) fills only after ~3 h, at ~1 KB per state. ``--shopper-cache``
  sets a bound the run reaches in its first half, so the slope measures what grows past it.
- edge: the ranking index per list (``edge.rerank``, 256 lists of ~78 KB: ~20 MB, full after
  ~10 min) and the rendered-answer memos (4,096 bodies of ~0.7 KB each, full after ~40 min);
  the response store itself holds ~30 keys, ~0.9 MB of bodies.

``--memtrace DIR`` loads ``bench/memtrace`` into the origin and the edge and signals them at
every sample (``--memtrace-frames N``: tracemalloc snapshots by file:line; 0, the default:
RSS against the allocators' in-use bytes, and a census of cyclic garbage every 4th sample),
written into DIR (see ``bench/memtrace/sitecustomize.py``).

Last line: soak_minutes=<m> origin_rss_growth_mb_per_h=<o> edge_rss_growth_mb_per_h=<e>
processor_rss_growth_mb_per_h=<p> edge_p99_ms=<x>
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from ops.local.process import die_with_parent

TIERS = ("origin", "edge", "processor")
PROBE_EVERY_S = 0.25
READY_S = 300.0  # a loaded machine starts the stack slowly
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHILD_MIN_AGE_S = 30.0
RISE_MB = 0.5  # a new high by more than this is growth, not sampling noise


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        out.extend(int(c) for c in text.split())
    return out


def _age_s(pid: int) -> float:
    """Seconds since ``pid`` started (0 when it is gone)."""
    try:
        start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return uptime - start / CLOCK_TICKS


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` and its lasting descendants (uvicorn's workers), in MB; a child younger
    than ``CHILD_MIN_AGE_S`` is a job (the processor's lake sync) whose memory goes with it."""
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total_kb += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(c for c in _children(p) if _age_s(c) >= CHILD_MIN_AGE_S)
    return total_kb / 1024


def slope_per_h(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in points) / den * 3600


def last_rise(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The last (seconds, MB) point more than ``RISE_MB`` above the previous such point (the
    first sample counts as one): a slow creep shows as a rise every ``RISE_MB``."""
    found = points[0] if points else (0.0, 0.0)
    for at, mb in points:
        if mb > found[1] + RISE_MB:
            found = (at, mb)
    return found


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Probe(threading.Thread):
    """One returning shopper asking the edge for the home rail, timed, until stopped."""

    def __init__(self, edge_url: str) -> None:
        super().__init__(daemon=True)
        self.edge_url = edge_url
        self.samples: list[tuple[float, float]] = []  # (monotonic s, ms)
        self.errors = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10.0) as http:
            while not self.stopped.wait(PROBE_EVERY_S):
                started = time.perf_counter()
                try:
                    r = http.get(self.edge_url + "/p13n/v1/rail/home?k=12")
                except httpx.HTTPError:
                    self.errors += 1
                    continue
                ms = (time.perf_counter() - started) * 1000
                if r.status_code == 200:
                    self.samples.append((time.monotonic(), ms))
                else:
                    self.errors += 1


def _p13n(*args: str) -> list[str]:
    return [sys.executable, "-m", "ops.cli", *args]


def _wait_stack(directory: Path, up: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + READY_S
    path = directory / "stack.json"
    while time.monotonic() < deadline:
        if up.poll() is not None:
            raise SystemExit(f"p13n up exited ({up.returncode}); see {directory}")
        if path.exists():
            try:
                info: dict[str, object] = json.loads(path.read_text())
            except ValueError:
                info = {}
            pids = info.get("pids")
            if isinstance(pids, dict) and all(t in pids for t in TIERS):
                return info
        time.sleep(0.2)
    raise SystemExit(f"the stack did not come up within {READY_S:.0f} s")


def _pids(directory: Path) -> dict[str, int]:
    try:
        pids = json.loads((directory / "stack.json").read_text()).get("pids", {})
    except (OSError, ValueError):
        return {}
    return {t: int(pids[t]) for t in TIERS if t in pids}


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


MEMTRACE = Path(__file__).resolve().parent / "memtrace"
TRACED = ("origin", "edge")


def _memtrace_env(env: dict[str, str], out: Path, frames: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = f"{MEMTRACE}{os.pathsep}{path}" if path else str(MEMTRACE)
    env["MEMTRACE_DIR"] = str(out.resolve())
    env["MEMTRACE_MATCH"] = "|".join(f"ops.cli {t} " for t in TRACED)
    env["MEMTRACE_FRAMES"] = str(frames)


def _memtrace_signal(pids: dict[str, int], k: int, frames: int) -> None:
    sig = signal.SIGUSR2 if frames == 0 and k % 4 == 3 else signal.SIGUSR1
    for t in TRACED:
        if t in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[t], sig)


def soak(
    directory: Path,
    minutes: float,
    rate: float,
    sample_s: float,
    cache: int,
    memtrace: Path | None = None,
    frames: int = 0,
) -> int:
    """Run the soak; prints one line per sample and the last line."""
    duration = minutes * 60
    env = dict(os.environ)
    if cache:
        env["P13N_SHOPPER_CACHE_SIZE"] = str(cache)
    if memtrace is not None:
        _memtrace_env(env, memtrace, frames)
    # die_with_parent: a soak killed outright (timeout, SIGTERM) leaves no stack behind.
    up = subprocess.Popen(_p13n("up", "--dir", str(directory)), start_new_session=True, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          preexec_fn=die_with_parent())  # noqa: PLW1509  # fmt: skip
    sim: subprocess.Popen[bytes] | None = None
    probe: Probe | None = None
    try:
        info = _wait_stack(directory, up)
        sim = subprocess.Popen(
            _p13n("simulate", "--stack", str(directory), "--rate", str(rate),
                  "--duration", str(duration), "--no-progress"),
            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # noqa: PLW1509
        )  # fmt: skip
        probe = Probe(str(info["edge_url"]))
        probe.start()
        t0 = time.monotonic()
        series: dict[str, list[tuple[float, float]]] = {t: [] for t in TIERS}
        k = 0
        while True:
            now = time.monotonic() - t0
            pids = _pids(directory)
            row = {t: tree_rss_mb(pids[t]) if t in pids else 0.0 for t in TIERS}
            for t in TIERS:
                series[t].append((now, row[t]))
            load = os.getloadavg()[0]
            cells = " ".join(f"{t}_mb={row[t]:.1f}" for t in TIERS)
            print(f"t={now / 60:5.1f}min {cells} load={load:.2f}", flush=True)
            if memtrace is not None:
                _memtrace_signal(pids, k, frames)
            k += 1
            if now >= duration - 1:
                break
            time.sleep(max(0.0, t0 + k * sample_s - time.monotonic()))
        probe.stopped.set()
        out = sim.communicate(timeout=120)[0].decode(errors="replace").strip().splitlines()
        print("simulate: " + (out[-1] if out else f"exit {sim.returncode}"), flush=True)
    finally:
        if probe is not None:
            probe.stopped.set()
            probe.join(timeout=15)
        if sim is not None:
            _stop(sim)
        _stop(up)
    half = duration / 2
    growth = {t: slope_per_h([p for p in series[t] if p[0] >= half]) for t in TIERS}
    lat = [ms for at, ms in probe.samples if at - t0 >= half]
    print(f"probe: {len(lat)} answers in the second half, {probe.errors} errors", flush=True)
    for t in TIERS:  # the plateau: a bound filling late in the run shows as a slope above
        at, mb = last_rise(series[t])
        print(f"{t}: {series[t][-1][1]:.1f} MB at the end, last new high (+{RISE_MB:g} MB) "
              f"at {at / 60:.1f} min ({mb:.1f} MB)", flush=True)  # fmt: skip
    print(
        f"soak_minutes={minutes:g} origin_rss_growth_mb_per_h={growth['origin']:.1f} "
        f"edge_rss_growth_mb_per_h={growth['edge']:.1f} "
        f"processor_rss_growth_mb_per_h={growth['processor']:.1f} edge_p99_ms={p99(lat):.1f}",
        flush=True,
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="run length (default 10)")
    ap.add_argument("--rate", type=float, default=40.0, help="visits per second (default 40)")
    ap.add_argument("--sample-s", type=float, default=60.0, help="RSS sample interval (60)")
    ap.add_argument(
        "--shopper-cache", type=int, default=0, help="processor shopper-cache bound (its default)"
    )
    ap.add_argument("--memtrace", type=Path, help="memory probes of origin and edge, written here")
    ap.add_argument(
        "--memtrace-frames", type=int, default=0, help="tracemalloc frames (0: no tracing)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="p13n-soak-") as tmp:
        return soak(
            Path(tmp), args.minutes, args.rate, args.sample_s, args.shopper_cache,
            args.memtrace, args.memtrace_frames,
        )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
