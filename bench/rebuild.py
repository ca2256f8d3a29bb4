"""Full rebuild of the online store from the archive: how long, for an archive of known size.

1. Writes ``--events`` synthetic events (``ops.shop.stream``: Zipf items, sessions,
   funnels, exposures; 20,000 shoppers) into a fresh archive, partitioned as the collector
   would (8 partitions, one stream id per event, arriving 150 ms after its event time).
2. Starts a throwaway Redis and runs the real command, timed from the outside:

       p13n rebuild --redis-url <throwaway> --archive-dir <archive>

3. Baseline, same run, same archive: a process of the same interpreter that only reads the
   archive back (every partition, every line decoded), timed the same way: the floor a
   rebuild cannot go under on this machine.

Last line::

    rebuild_events=<N> rebuild_s=<T> rebuild_events_per_s=<N/T> archive_mb=<size>
    baseline_read_events_per_s=<R> ratio=<(N/T)/R>
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as `python bench/rebuild.py`, this folder comes first on sys.path and bench/origin.py
# would shadow the origin package: drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from ops.local.redis import RedisServer  # noqa: E402
from ops.shop import events  # noqa: E402
from segmenter.aggregates import Entry  # noqa: E402
from segmenter.archive import ArchiveWriter  # noqa: E402
from segmenter.event import encode  # noqa: E402
from segmenter.schema import DEFAULT_PARTITIONS, partition_of  # noqa: E402


def write_archive(root: Path, count: int) -> None:
    writer = ArchiveWriter(root)
    batches: dict[int, list[Entry]] = {}
    for n, ev in enumerate(events(count)):
        p = partition_of(ev.user, DEFAULT_PARTITIONS)
        ms = ev.ts + 150  # arrival: 150 ms after the event time (SDK buffer, network)
        batches.setdefault(p, []).append(Entry(f"{ms}-{n}", encode(ev), ev))
        if len(batches[p]) >= 500:
            writer.append(p, batches.pop(p))
    for p, batch in batches.items():
        writer.append(p, batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="p13n-rebuild-") as tmp:
        root = Path(tmp) / "archive"
        write_archive(root, args.events)
        size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6
        server = RedisServer().start()
        try:
            cmd = [sys.executable, "-m", "ops.cli", "rebuild", "--redis-url", server.url,
                   "--archive-dir", str(root)]  # fmt: skip
            started = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
            seconds = time.perf_counter() - started
        finally:
            server.close()
        read = [sys.executable, "-c", _READ_ONLY, str(root), str(DEFAULT_PARTITIONS)]
        started = time.perf_counter()
        counted = subprocess.run(read, capture_output=True, text=True, check=True, timeout=3600)
        read_s = time.perf_counter() - started
    assert int(counted.stdout) == args.events, counted.stdout
    print(out.stdout.strip())
    rate, floor = args.events / seconds, args.events / read_s
    print(f"baseline: reading the archive back took {read_s:.2f} s")
    print(
        f"rebuild_events={args.events} rebuild_s={seconds:.2f} "
        f"rebuild_events_per_s={rate:.0f} archive_mb={size_mb:.1f} "
        f"baseline_read_events_per_s={floor:.0f} ratio={rate / floor:.2f}"
    )


# The baseline process: read every partition's lines back, print how many.
_READ_ONLY = (
    "import sys; from pathlib import Path; from segmenter import archive; "
    "root, n = Path(sys.argv[1]), int(sys.argv[2]); "
    "print(sum(1 for p in range(n) for _ in archive.read_partition(root, p)))"
)


if __name__ == "__main__":
    main()
