"""Origin guardrail counters per experiment arm: answers, slow answers, degraded answers.

The recommendations endpoint records each answer's variants in memory (no Redis call on the
hot path); a background task of every origin process flushes the sums every ``FLUSH_S``
with one pipeline of ``HINCRBY`` into ``Keys.guardrails(experiment)`` (fields ``n:<variant>``
answers, ``s:<variant>`` slower than the latency budget, ``f:<variant>`` degraded: Redis down
or an error, answered from memory). A flush that fails puts its sums back for the next one,
so a Redis outage loses nothing the process still holds (a flush whose reply alone was lost
counts twice: these are rates for guardrails, not the results' exactly-once counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline

    from origin.state import AppState

__all__ = ["FLUSH_S", "GuardrailCounter", "run"]

LOG = logging.getLogger("p13n.origin.guardrails")
FLUSH_S = 1.0
# Not experiments: the global holdout's mark rides in the same variants map.
_SKIP = frozenset({"p13n-holdout"})


class GuardrailCounter:
    """Per-process sums of (experiment, field) since the last flush."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, variants: dict[str, str], *, slow: bool, degraded: bool) -> None:
        """One answer with these ``variants`` (experiment -> variant)."""
        c = self._counts
        for exp, variant in variants.items():
            if exp in _SKIP:
                continue
            c[exp, "n:" + variant] += 1
            if slow:
                c[exp, "s:" + variant] += 1
            if degraded:
                c[exp, "f:" + variant] += 1

    def take(self) -> Counter[tuple[str, str]]:
        """The sums so far, reset."""
        out, self._counts = self._counts, Counter()
        return out

    def put_back(self, counts: Counter[tuple[str, str]]) -> None:
        """Sums a failed flush did not write: counted again next time."""
        self._counts.update(counts)

    async def flush(self, state: AppState) -> int:
        """Write the sums in one pipeline; the number of fields written."""
        counts = self.take()
        if not counts:
            return 0

        def build(p: Pipeline) -> None:
            for (exp, name), n in counts.items():
                p.hincrby(state.keys.guardrails(exp), name, n)

        try:
            await state.store.pipeline("guardrails", build)
        except BaseException:
            self.put_back(counts)
            raise
        return len(counts)


async def run(state: AppState, counter: GuardrailCounter, stop: asyncio.Event) -> None:
    """Flush every ``FLUSH_S`` until ``stop``, then once more; survives Redis failures."""
    while True:
        stopping = stop.is_set()
        try:
            await counter.flush(state)
        except Exception as exc:  # kept in memory, retried next time
            LOG.debug("guardrail flush: %s", type(exc).__name__)
        if stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FLUSH_S)
