"""What a load generator needs besides its shoppers: polite retries and a look at itself.

``send`` retries the answers that mean "not now" (503 and 429) after the server's
``Retry-After`` (capped), a few times, then hands back the last answer: a collector that
rate-limits or an origin that restarts costs a delay, never a crashed run. ``LoadMeter``
measures the generator's own CPU share and the rate it achieved against the rate it was
asked for, so the summary can say when the machine (two cores shared by the generator and
the system under test), not the system, is the bottleneck.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["RETRY_STATUSES", "LoadMeter", "LoadVerdict", "retry_after_s", "send"]

RETRY_STATUSES = frozenset({429, 503})
MAX_ATTEMPTS = 4  # the first try and three retries
MAX_WAIT_S = 5.0  # a longer Retry-After is honoured as this much (the run is bounded)
DEFAULT_WAIT_S = 0.5  # a 503 or 429 without Retry-After
# The generator is the bottleneck when it achieved less than this share of the offered rate,
# or used more than this share of one core (one asyncio loop is one core at most).
ACHIEVED_FLOOR = 0.9
CPU_CEILING = 0.8


def retry_after_s(response: httpx.Response) -> float:
    """Seconds the answer asks to wait (RFC 9110 delay-seconds; a date or junk: the default),
    capped at ``MAX_WAIT_S``."""
    raw = response.headers.get("retry-after", "")
    try:
        wait = float(raw)
    except ValueError:
        wait = DEFAULT_WAIT_S
    return min(max(wait, 0.0), MAX_WAIT_S)


async def send(
    http: httpx.AsyncClient, method: str, url: str, retries: Counter[str], **kw: Any
) -> httpx.Response:
    """One request, retried on 503/429 after ``Retry-After``; the last answer. Each retry is
    counted in ``retries`` by status ("429", "503")."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        response = await http.request(method, url, **kw)
        if response.status_code not in RETRY_STATUSES or attempt == MAX_ATTEMPTS:
            return response
        retries[str(response.status_code)] += 1
        await asyncio.sleep(retry_after_s(response))
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def _cpu_s() -> float:
    """This process's CPU time (user + system) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class LoadVerdict:
    """The generator's own figures over one run."""

    offered_per_s: float
    achieved_per_s: float
    cpu_share: float  # of one core, the generator's user + system time over wall time
    cores: int
    load_average: float

    @property
    def machine_bound(self) -> bool:
        """True when the generator, not the system under test, limited the run."""
        low_rate = self.achieved_per_s < ACHIEVED_FLOOR * self.offered_per_s
        return low_rate or self.cpu_share > CPU_CEILING

    def lines(self) -> list[str]:
        rows = [
            "== load generator (this process, on the same machine as the stack)",
            f"  offered {self.offered_per_s:.1f} visits/s, achieved {self.achieved_per_s:.1f}/s; "
            f"own CPU {self.cpu_share:.0%} of one core; {self.cores} cores, load average "
            f"{self.load_average:.2f}",
        ]
        if self.machine_bound:
            rows.append(
                "  the MACHINE is the bottleneck, not the system under test: the generator "
                "could not keep the offered rate or used most of a core; latencies include "
                "its own queueing (lower --rate, or run it on another host)"
            )
        return rows


@dataclass
class LoadMeter:
    """CPU time and wall time from ``start`` to ``stop``, and the visits started between."""

    offered_per_s: float
    started_wall: float = field(default_factory=time.monotonic)
    started_cpu: float = field(default_factory=_cpu_s)
    visits: int = 0

    def verdict(self) -> LoadVerdict:
        wall = max(time.monotonic() - self.started_wall, 1e-9)
        return LoadVerdict(
            offered_per_s=self.offered_per_s,
            achieved_per_s=self.visits / wall,
            cpu_share=(_cpu_s() - self.started_cpu) / wall,
            cores=os.cpu_count() or 1,
            load_average=os.getloadavg()[0],
        )
