"""Heartbeats: every few seconds the edge tells the origin what it has applied and served,
so the origin can say an invalidation is applied by n of m live edges."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from edge.proxy.app import EdgeRuntime

__all__ = ["HEARTBEAT_PATH", "heartbeat_doc", "send_heartbeats"]

HEARTBEAT_PATH = "/v1/edge/heartbeat"


def heartbeat_doc(rt: EdgeRuntime, now_ms: int) -> dict[str, Any]:
    """The heartbeat body: identity, config, applied generations and purges, counts."""
    cfg = rt.config.config
    h = rt.http.counters
    counts = {"hit": h.hit, "stale": h.stale, "miss": h.miss + h.revalidated, "error": h.error}
    if rt.rails is not None:
        for tier, n in rt.rails.counters.as_dict().items():
            counts[tier] = counts.get(tier, 0) + n
    return {
        "edge_id": rt.settings.edge_id,
        "config_etag": rt.config.etag,
        "generations": {t: list(g) for t, g in cfg.generations.items()} if cfg else {},
        "applied_purges": rt.config.applied_purges[-50:],
        "counts": counts,
    }


async def send_heartbeats(rt: EdgeRuntime) -> None:
    """Run until cancelled; a failed heartbeat is simply retried at the next tick."""
    url = rt.settings.origin_url + HEARTBEAT_PATH
    while True:
        with contextlib.suppress(httpx.HTTPError):
            await rt.client.post(
                url,
                json=heartbeat_doc(rt, int(time.time() * 1000)),
                headers=rt.settings.origin_auth_headers(),
                timeout=2,
            )
        await asyncio.sleep(rt.settings.heartbeat_s)
