"""One connection factory for every tier: a Redis URL -> a single-node or a cluster client.

Cluster mode is chosen by the URL, so one string setting travels through every process::

    redis://h:6380/0                       one Redis (redis-py's ``Redis``)
    redis+cluster://h1:7000,h2:7001        Redis Cluster (redis-py's ``RedisCluster``);
    rediss+cluster://user:pw@h1:7000       ... with TLS and credentials
    redis://h1:7000?cluster=1              the same, for tools that only accept redis://

``REDIS_CLUSTER_NODES=h1:7000,h2:7001`` (read by each tier's settings, see ``cluster_url``)
is turned into the ``redis+cluster://`` form. The nodes listed are only the first contact:
the client discovers the others, and follows failovers and slot moves (MOVED/ASK).

On a cluster every multi-key command, script and MULTI block must stay in one hash slot:
the key layout in ``segmenter.schema`` guarantees it with hash tags. Non-transactional
pipelines may span slots (the client splits them per node, without atomicity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.cluster import ClusterNode

__all__ = ["RedisTarget", "cluster_url", "connect", "connect_sync", "parse"]

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_TRUE = {"1", "true", "yes"}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the online store lives: one URL, or cluster seed nodes with credentials."""

    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @property
    def cluster(self) -> bool:
        return bool(self.nodes)


def cluster_url(url: str, nodes: str) -> str:
    """The URL a tier uses: ``nodes`` ("h1:7000,h2:7001") turns ``url`` into cluster form.

    >>> cluster_url("", "10.0.0.1:7000,10.0.0.2:7000")
    'redis+cluster://10.0.0.1:7000,10.0.0.2:7000'
    >>> cluster_url("rediss://u:pw@ignored:1/0", "h:7000")
    'rediss+cluster://u:pw@h:7000'
    """
    hosts = ",".join(n.strip() for n in nodes.split(",") if n.strip())
    if not hosts:
        return url
    parts = urlsplit(url) if url else None
    scheme = "rediss" if parts is not None and parts.scheme.startswith("rediss") else "redis"
    auth = parts.netloc.rpartition("@")[0] if parts is not None else ""
    return f"{scheme}+cluster://{auth + '@' if auth else ''}{hosts}"


def _node(text: str, url: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"cluster node {text!r} in {url!r} is not host:port")
    return host.strip("[]"), int(port)


def parse(url: str) -> RedisTarget:
    """Read a URL in one of the forms of the module docstring."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    wants_cluster = query.pop("cluster", "").lower() in _TRUE
    scheme = _CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None and not wants_cluster:
        return RedisTarget(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes = tuple(_node(h, url) for h in hosts.split(",") if h.strip())
    if not nodes:
        raise ValueError(f"{url!r} names no cluster node")
    plain = urlunsplit(
        (scheme or parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment)
    )
    return RedisTarget(
        url=plain,
        nodes=nodes,
        username=unquote(user) or None,
        password=unquote(password) or None,
        tls=(scheme or parts.scheme) == "rediss",
    )


def _cluster_options(target: RedisTarget, options: dict[str, Any]) -> dict[str, Any]:
    opts = dict(options)
    opts.pop("health_check_interval", None)  # per-node connections check themselves
    if target.username:
        opts["username"] = target.username
    if target.password:
        opts["password"] = target.password
    if target.tls:
        opts["ssl"] = True
    # Serve the slots that still have a master while a failover runs elsewhere.
    opts.setdefault("require_full_coverage", False)
    return opts


def connect(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url``; ``options`` are redis-py connection options.

    A cluster client is returned under the ``Redis`` type: it serves the same single-slot
    commands, scripts and pipelines the adapters use, so they keep one signature.
    """
    target = parse(url)
    if not target.cluster:
        return aioredis.Redis.from_url(url, **options)
    client = aioredis.RedisCluster(
        startup_nodes=[AsyncClusterNode(h, p) for h, p in target.nodes],
        **_cluster_options(target, options),
    )
    return cast(aioredis.Redis, client)


def connect_sync(url: str, **options: Any) -> redis.Redis:
    """The blocking counterpart of ``connect`` (CLI tools, tests, benchmarks)."""
    target = parse(url)
    if not target.cluster:
        return redis.Redis.from_url(url, **options)
    client = redis.RedisCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],  # type: ignore[no-untyped-call]
        **_cluster_options(target, options),
    )
    return cast(redis.Redis, client)
