"""Assignments per second: ours vs GrowthBook's own Python SDK, in the same run.

First checks both give identical buckets on 100,000 random ASCII ids, then times
hash + get_bucket_ranges + choose_variation for each, interleaved over several rounds
(the machine is shared and noisy), and reports the medians.

Last line: bucketing_ns_per_assign=<ours> growthbook_ns_per_assign=<theirs> ratio=<theirs/ours>
hash_ns=<ours, hash alone> growthbook_hash_ns=<theirs, hash alone>
"""

from __future__ import annotations

import random
import statistics
import string
import sys
import time
from collections.abc import Callable

from growthbook import core as gb

from cache_keys import bucketing

N_IDS = 100_000
ROUNDS = 7
WEIGHTS = [0.2, 0.3, 0.5]
COVERAGE = 0.9
SEED = "homepage-rail"


def ours(uid: str) -> int:
    n = bucketing.hash(SEED, uid, 2)
    assert n is not None
    return bucketing.choose_variation(n, bucketing.get_bucket_ranges(3, COVERAGE, WEIGHTS))


def theirs(uid: str) -> int:
    n = gb.gbhash(SEED, uid, 2)
    assert n is not None
    return int(gb.chooseVariation(n, gb.getBucketRanges(3, COVERAGE, WEIGHTS)))


def ours_hash(uid: str) -> float | None:
    return bucketing.hash(SEED, uid, 2)


def theirs_hash(uid: str) -> float | None:
    return gb.gbhash(SEED, uid, 2)


def time_ns_per_call(fn: Callable[[str], object], ids: list[str]) -> float:
    start = time.perf_counter_ns()
    for uid in ids:
        fn(uid)
    return (time.perf_counter_ns() - start) / len(ids)


def main() -> int:
    rng = random.Random(20261126)
    alphabet = string.ascii_letters + string.digits + "-_"
    ids = ["".join(rng.choices(alphabet, k=rng.randint(8, 36))) for _ in range(N_IDS)]
    mismatches = sum(1 for uid in ids if ours(uid) != theirs(uid))
    if mismatches:
        print(f"FAILED: {mismatches} of {N_IDS} ids bucket differently from GrowthBook")
        return 1
    print(f"identical buckets on {N_IDS} random ASCII ids")
    sample = ids[:20_000]
    our_runs, their_runs = [], []
    for r in range(ROUNDS):
        pair = [(our_runs, ours), (their_runs, theirs)]
        if r % 2:
            pair.reverse()
        for runs, fn in pair:
            runs.append(time_ns_per_call(fn, sample))
        print(
            f"round {r + 1}/{ROUNDS}: ours={our_runs[-1]:.0f} ns growthbook={their_runs[-1]:.0f} ns"
        )
    o, t = statistics.median(our_runs), statistics.median(their_runs)
    # What bounds the ratio: the hash alone (two FNV-1a walks, one Python step per byte of
    # the id and of the inner hash's decimal digits), against a third of their assignment.
    hash_runs = [time_ns_per_call(ours_hash, sample) for _ in range(3)]
    their_hash_runs = [time_ns_per_call(theirs_hash, sample) for _ in range(3)]
    h, th = statistics.median(hash_runs), statistics.median(their_hash_runs)
    print(
        f"hash alone: ours={h:.0f} ns growthbook={th:.0f} ns; "
        f"a 3x assignment would have to cost {t / 3:.0f} ns in all"
    )
    print(
        f"bucketing_ns_per_assign={o:.0f} growthbook_ns_per_assign={t:.0f} ratio={t / o:.2f} "
        f"hash_ns={h:.0f} growthbook_hash_ns={th:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
