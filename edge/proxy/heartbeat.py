"""Heartbeats: every few seconds the edge tells the origin what it has applied and served,
so the origin can say an invalidation is applied by n of m live edges.

A heartbeat is bounded however many tags were ever purged: the edge's id, its config ETag,
the revision of the newest config it pulled (``config_revision``: it holds every generation
up to it), the ids of the last ``MAX_PURGE_IDS`` purges pushed to it, answer counts, and
its traffic counters since start (``cache_keys.costs.TRAFFIC_FIELDS``: five integers, for the
console's offload and egress estimate).
Never per-tag generations (one 1000-tag purge alone would pass the origin's 16 KB limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import httpx

from edge.proxy.config import ConfigHolder
from edge.proxy.settings import ProxySettings

__all__ = [
    "HEARTBEAT_PATH",
    "MAX_PURGE_IDS",
    "Beating",
    "HeartbeatLog",
    "heartbeat_doc",
    "refuses_traffic",
    "send_heartbeats",
]

log = logging.getLogger("p13n.edge.heartbeat")
HEARTBEAT_PATH = "/v1/edge/heartbeat"
MAX_PURGE_IDS = 50  # ids are at most 64 characters: about 3.5 KB at most


class Beating(Protocol):
    """What a heartbeat reads of the edge (its runtime, without importing it)."""

    settings: ProxySettings
    config: ConfigHolder
    client: httpx.AsyncClient
    stopping: asyncio.Event

    def answer_counts(self) -> dict[str, int]:
        """Answers by tier so far."""
        ...

    def traffic_figures(self) -> dict[str, int]:
        """Requests, bytes sent, origin fetches and bytes since start, and the uptime."""
        ...


def heartbeat_doc(rt: Beating, now_ms: int, *, traffic: bool = True) -> dict[str, Any]:
    """The heartbeat body: identity, config, applied purges, counts, traffic counters."""
    doc: dict[str, Any] = {
        "edge_id": rt.settings.edge_id,
        "config_etag": rt.config.etag,
        "applied_purges": rt.config.applied_purges[-MAX_PURGE_IDS:],
        "counts": rt.answer_counts(),
    }
    if traffic:
        doc["traffic"] = rt.traffic_figures()
    if rt.config.revision is not None:  # an older origin sends none, and accepts none
        doc["config_revision"] = rt.config.revision
    return doc


def refuses_traffic(resp: httpx.Response) -> bool:
    """An origin older than the ``traffic`` field: a 400 naming it (the problem's ``field``)."""
    if resp.status_code != 400:
        return False
    try:
        problem = resp.json()
    except ValueError:
        return False
    return isinstance(problem, dict) and problem.get("field") == "traffic"


class HeartbeatLog:
    """Logs a refused or failed heartbeat once per change of outcome, not once per beat."""

    def __init__(self) -> None:
        self.outcome = "ok"

    def note(self, outcome: str) -> None:
        if outcome == self.outcome:
            return
        if outcome == "ok":
            log.info("heartbeats accepted again (after %s)", self.outcome)
        else:
            log.warning("heartbeat not accepted by the origin: %s", outcome)
        self.outcome = outcome


async def send_heartbeats(rt: Beating) -> None:
    """Run until ``rt.stopping`` is set; a failed heartbeat is retried at the next tick.

    The event, not only cancellation, ends the loop: httpx can swallow a cancellation.
    """
    url = rt.settings.origin_url + HEARTBEAT_PATH
    outcomes = HeartbeatLog()
    traffic = True
    while not rt.stopping.is_set():
        try:
            resp = await rt.client.post(
                url,
                json=heartbeat_doc(rt, int(time.time() * 1000), traffic=traffic),
                headers=rt.settings.origin_auth_headers(),
                timeout=2,
            )
            if traffic and refuses_traffic(resp):
                log.warning("the origin does not know heartbeat traffic counters: not sent")
                traffic = False
                continue  # at once, without them
            outcomes.note("ok" if resp.is_success else f"HTTP {resp.status_code}")
        except httpx.HTTPError as exc:
            outcomes.note(f"unreachable ({type(exc).__name__})")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.stopping.wait(), rt.settings.heartbeat_s)
