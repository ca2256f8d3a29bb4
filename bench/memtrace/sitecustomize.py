"""Where a running tier's memory goes: loaded by ``bench/soak.py --memtrace DIR`` into every
Python process of the stack (this directory on ``PYTHONPATH``), active only in those whose
command line contains one of ``MEMTRACE_MATCH`` (``|``-separated), writing into
``MEMTRACE_DIR``. Not a project setting: a benchmark's probe, off unless asked for.

- ``MEMTRACE_FRAMES=N`` (N > 0): tracemalloc from the start with N frames; SIGUSR1 collects
  the garbage, dumps a snapshot to ``<pid>-<n>.snap`` (``python bench/memtrace/diff.py``
  compares two by file:line) and appends the traced total and RSS to ``<pid>.totals``.
  Slow (the tiers answer several times slower): for finding sites, not for timing.
- ``MEMTRACE_FRAMES=0``: no tracing; SIGUSR1 appends one line to ``<pid>.stats``: RSS, the
  bytes pymalloc has in use and its arenas, glibc's heap and bytes in use, the garbage
  collector's counts. RSS growing with flat in-use bytes is the allocator (fragmentation),
  not a leak. SIGUSR2 appends a census of the cyclic garbage a full collection finds to
  ``<pid>.garbage`` (by type), which a gen-0 collection would otherwise free unseen.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("MEMTRACE_DIR", "")


def _wanted() -> bool:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(m and m in cmdline for m in os.environ.get("MEMTRACE_MATCH", "").split("|"))


if _DIR and _wanted():
    import ctypes
    import gc
    import signal
    import sys
    import time
    import tracemalloc
    from collections import Counter
    from types import FrameType

    _FRAMES = int(os.environ.get("MEMTRACE_FRAMES", "0"))
    _PYMALLOC = {
        "arenas allocated current": "arenas",
        "bytes in allocated blocks": "used",
        "bytes in available blocks": "avail",
    }
    _count = [0]

    class _MallInfo2(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                      "uordblks", "fordblks", "keepcost")
        ]  # fmt: skip

    _libc = ctypes.CDLL(None)
    _libc.mallinfo2.restype = _MallInfo2

    def _rss() -> int:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _pymalloc() -> dict[str, int]:
        """pymalloc's own figures (``sys._debugmallocstats`` writes them to fd 2 only)."""
        path = os.path.join(_DIR, f".{os.getpid()}.malloc")
        fd, saved = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), os.dup(2)
        os.dup2(fd, 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(fd)
        out = {}
        with open(path, errors="replace") as f:
            for line in f:
                name, _, value = line.lstrip("# ").rpartition("=")
                if name.strip() in _PYMALLOC:
                    out[_PYMALLOC[name.strip()]] = int(value.strip().replace(",", ""))
        os.unlink(path)
        return out

    def _write(name: str, line: str) -> None:
        with open(os.path.join(_DIR, f"{os.getpid()}.{name}"), "a") as f:
            f.write(line + "\n")

    def _snapshot(signum: int, frame: FrameType | None) -> None:
        _count[0] += 1
        gc.collect()
        tracemalloc.take_snapshot().dump(os.path.join(_DIR, f"{os.getpid()}-{_count[0]:03d}.snap"))
        traced, _ = tracemalloc.get_traced_memory()
        _write("totals", f"t={time.time():.0f} n={_count[0]} traced={traced} rss={_rss()}")

    def _stats(signum: int, frame: FrameType | None) -> None:
        mi, pm = _libc.mallinfo2(), _pymalloc()
        gcs = "/".join(str(s["collections"]) for s in gc.get_stats())
        _write(
            "stats",
            f"t={time.time():.0f} rss={_rss()} pymalloc_used={pm.get('used', 0)} "
            f"pymalloc_arenas={pm.get('arenas', 0)} glibc_heap={mi.arena} "
            f"glibc_inuse={mi.uordblks} glibc_mmap={mi.hblkhd} gc={gcs}",
        )

    def _garbage(signum: int, frame: FrameType | None) -> None:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            found = gc.collect()
            kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        finally:
            gc.garbage.clear()
            gc.set_debug(0)
        top = " ".join(f"{k}={n}" for k, n in kinds.most_common(12))
        _write("garbage", f"t={time.time():.0f} collected={found} {top}")

    if _FRAMES > 0:
        tracemalloc.start(_FRAMES)
        signal.signal(signal.SIGUSR1, _snapshot)
    else:
        signal.signal(signal.SIGUSR1, _stats)
        signal.signal(signal.SIGUSR2, _garbage)
