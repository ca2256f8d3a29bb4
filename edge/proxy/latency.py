"""Origin latency in milliseconds, cheap enough to observe on every request."""

from __future__ import annotations

__all__ = ["BUCKETS_MS", "LatencyHistogram"]

BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class LatencyHistogram:
    """Cumulative-bucket histogram in milliseconds (cheap to observe on the hot path)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_MS) + 1)
        self.total_ms = 0.0

    def observe(self, ms: float) -> None:
        self.total_ms += ms
        for i, bound in enumerate(BUCKETS_MS):
            if ms <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip((*map(str, BUCKETS_MS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out
