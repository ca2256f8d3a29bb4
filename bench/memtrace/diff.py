"""What grew between two tracemalloc snapshots of one process (``bench/memtrace``).

    python bench/memtrace/diff.py DIR/1234-003.snap DIR/1234-009.snap [--top 25] [--traceback]

Prints the total traced difference, then the sites that grew most, by file:line (or by the
whole allocating traceback), with their count of blocks and their size now.
"""

from __future__ import annotations

import argparse
import tracemalloc

# tracemalloc's own bookkeeping and imports are not the tier's memory
IGNORED = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "*/bench/memtrace/*")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--traceback", action="store_true", help="group by whole traceback")
    args = ap.parse_args()
    ignored = [tracemalloc.Filter(False, pattern) for pattern in IGNORED]
    before = tracemalloc.Snapshot.load(args.before).filter_traces(ignored)
    after = tracemalloc.Snapshot.load(args.after).filter_traces(ignored)
    total = sum(s.size for s in after.statistics("filename"))
    total -= sum(s.size for s in before.statistics("filename"))
    print(f"traced difference: {total / 1e6:+.2f} MB")
    for stat in after.compare_to(before, "traceback" if args.traceback else "lineno")[: args.top]:
        print(f"{stat.size_diff / 1e3:+9.1f} kB {stat.count_diff:+8d} blocks, "
              f"now {stat.size / 1e3:.0f} kB")  # fmt: skip
        for line in stat.traceback.format() if args.traceback else [f"  {stat.traceback}"]:
            print("    " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
