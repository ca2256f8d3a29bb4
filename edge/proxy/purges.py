"""Pushed purges: a Redis pub/sub subscriber that reconnects by itself.

Each message (``cache_keys.wire.PurgeMessage``) raises the held config's generations and
extends its item mask at once, so every decision after it sees the purge, then pulls the
config (a rule change travels in it) before the purge is reported applied; stored proxied
responses carrying a purged tag are dropped (hard) or made stale (soft); a purge of ``*``
drops (hard) or makes stale (soft) every stored response, tagged or not.

A message missed while disconnected is caught up by the generations pulled with the edge
config (``catch_up``): right after every (re)subscription, and every config max-age by
``refresh_config`` whatever the traffic. Tags whose generations a pulled config raised are
purged from the stored proxied responses as a pushed message would have.

On Redis Cluster (``redis+cluster://h1:p1,h2:p2`` or ``?cluster=1``) a PUBLISH reaches every
node over the cluster bus, so a plain subscription on any one node hears every purge; the
subscriber moves to the next listed node when its node fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cache_keys.errors import CacheKeysError
from cache_keys.wire import ALL_TAG, PurgeMessage, decode_purge
from edge.proxy.config import ConfigHolder
from edge.proxy.store import ResponseStore

__all__ = [
    "PurgeStats",
    "apply_purge",
    "catch_up",
    "node_urls",
    "refresh_config",
    "subscribe_purges",
]

log = logging.getLogger("p13n.edge.purges")
RECONNECT_MAX_S = 5.0


class PurgeStats:
    """What the subscriber has done, for metrics and heartbeats."""

    def __init__(self) -> None:
        self.applied = 0
        self.rejected = 0
        self.reconnects = 0
        self.last_lag_ms = 0.0
        self.connected = False


def node_urls(redis_url: str) -> list[str]:
    """The single-node URLs to subscribe on, in turn.

    >>> node_urls("redis+cluster://a:7000,b:7001")
    ['redis://a:7000', 'redis://b:7001']
    """
    parts = urlsplit(redis_url)
    query = dict(parse_qsl(parts.query))
    clustered = query.pop("cluster", "") in ("1", "true", "yes")
    scheme = parts.scheme.removesuffix("+cluster")
    if scheme == parts.scheme and not clustered:
        return [redis_url]
    auth, at, hosts = parts.netloc.rpartition("@")
    return [
        urlunsplit((scheme, f"{auth}{at}{host.strip()}", parts.path, urlencode(query), ""))
        for host in hosts.split(",")
        if host.strip()
    ]


def apply_purge(msg: PurgeMessage, config: ConfigHolder, store: ResponseStore) -> None:
    """Apply one purge to the held config and the stored responses."""
    config.apply_purge(msg)
    if msg.mode == "hard":
        if ALL_TAG in msg.tags:
            store.clear()
        else:
            store.drop_tagged(msg.tags)
    elif ALL_TAG in msg.tags:
        store.expire_all()
    else:
        store.expire_tagged(msg.tags)


def _raised(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> tuple[set[str], set[str]]:
    """Tags whose soft and hard generations rose from ``before`` to ``after``."""
    soft, hard = set(), set()
    for t, (s, h) in after.items():
        was = before.get(t, (0, 0))
        if h > was[1]:
            hard.add(t)
        elif s > was[0]:
            soft.add(t)
    return soft, hard


async def catch_up(config: ConfigHolder, store: ResponseStore) -> None:
    """Pull the edge config now and purge stored responses of the tags it raised; never
    raises (a failed pull keeps the held config and is retried when due)."""
    try:
        await _catch_up(config, store)
    except Exception:  # the subscriber and the refresher must outlive any bug here
        log.exception("config catch-up failed")


async def _catch_up(config: ConfigHolder, store: ResponseStore) -> None:
    before = config.config.generations if config.config else None
    await config.load()
    if config.config is None or before is None:
        return  # nothing to compare with: rail entries check generations on every use
    soft, hard = _raised(before, config.config.generations)
    if ALL_TAG in hard:
        store.clear()
    elif hard:
        store.drop_tagged(hard)
    if ALL_TAG in soft:
        store.expire_all()
    elif soft:
        store.expire_tagged(soft)


async def refresh_config(config: ConfigHolder, store: ResponseStore, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set: catch up whenever the config is due (its max-age, a cached
    404's TTL, or a failure's backoff), with or without rail traffic.

    The stop event, not only cancellation, ends the loop: httpx can swallow a cancellation.
    """
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(config.refresh_in(), 0.05))
        if stop.is_set():
            return
        if config.refresh_in() == 0:
            await catch_up(config, store)


async def subscribe_purges(
    redis_url: str,
    channel: str,
    *,
    config: ConfigHolder,
    store: ResponseStore,
    stats: PurgeStats,
    stop: asyncio.Event,
    clock_ms: Callable[[], float] = lambda: time.time() * 1000,
) -> None:
    """Run until ``stop`` is set: subscribe, apply messages, reconnect with backoff.

    The stop event, not only cancellation, ends the loop: redis-py's ``get_message`` can
    swallow a cancellation that lands inside its own timeout handling.
    """
    backoff, urls, turn = 0.1, node_urls(redis_url), 0
    while not stop.is_set():
        client = aioredis.Redis.from_url(urls[turn % len(urls)], socket_connect_timeout=2)
        turn += 1
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            stats.connected, backoff = True, 0.1
            await catch_up(config, store)  # what was published while nobody listened
            while not stop.is_set():
                message = await pubsub.get_message(timeout=0.5)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    msg = decode_purge(message["data"])
                except CacheKeysError as exc:
                    stats.rejected += 1
                    log.warning("rejected purge message: %s", exc)
                    continue
                apply_purge(msg, config, store)
                # What a change carries besides generations (merchandising rules) is in the
                # config: pull it now rather than at its max-age, and only then report the
                # purge applied (the purge log counts an edge by its heartbeat).
                await catch_up(config, store)
                config.note_applied(msg.id)
                stats.applied += 1
                stats.last_lag_ms = max(0.0, clock_ms() - msg.issued_at_ms)
        except (RedisError, OSError) as exc:
            stats.connected = False
            stats.reconnects += 1
            log.warning(
                "purge channel lost (%s); reconnecting in %.1fs", type(exc).__name__, backoff
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)
        finally:
            stats.connected = False
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
                await client.aclose()
            except (RedisError, OSError):
                pass
