"""The Redis adapter of the processor: every read and write of a batch, in few round trips.

Two ways to write, chosen once per store (``per_slot``): per slot, for Redis Cluster, where a
script may only touch one hash slot; and batched, for a single Redis, where one script may
take every shopper of a batch and the partition at once. Per slot::

    load        one pipeline: partition meta, the batch's event ids, sessions, exposures,
                tombstones, and one read script per shopper (the anonymous shoppers that
                the batch's identify events merge included)
    dead        one idempotent script call per dead letter (pipelined)
    shoppers    one compare-and-set script per changed shopper (pipelined)
    commit      one script on the partition's slot: fencing token and offset checked, then
                aggregates, offset, watermark, counters and the XACK, atomically

Batched (single Redis): the same load with one read script for all shoppers; the dead letters
as per slot; then one script (APPLY) that checks the fencing token, the offset and every
shopper's last applied id, and only then writes the shoppers and commits: the shopper writes
and the commit are one atomic step.

Redis errors leave this module as ``StoreUnavailable`` (``raise … from``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from segmenter import scripts
from segmenter.aggregates import EXPERIMENT_EVENTS, Entry, PartitionEffects, PartitionState
from segmenter.event import Rejection
from segmenter.features import ShopperState, from_redis
from segmenter.schema import (
    COVIS_MAX,
    DEDUPE_TTL_S,
    DLQ_MAXLEN,
    GROUP,
    POPULARITY_BUCKET_S,
    POPULARITY_BUCKETS,
    SESSION_GAP_MS,
    SHOPPER_TTL_S,
    Keys,
    partition_of,
    tombstone_digest,
)

__all__ = ["Lease", "Loaded", "ShopperWrite", "Store", "StoreUnavailable", "dlq_fields"]

Hook = Callable[[str], None]
# (user, expected last_id, diff as ``features.diff`` returns it)
ShopperWrite = tuple[str, str, list[Any]]
# (status, users in conflict, the watched users tombstoned at the commit or None: not looked up)
Written = tuple[str, list[str], list[str] | None]


class StoreUnavailable(RuntimeError):
    """Redis did not answer; the batch was not committed and will be retried."""


_PIPELINE_ERROR = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)
_SHOPPER_SLOT = re.compile(r"\{u:[^}]*\}")


def redis_reason(exc: BaseException) -> str:
    """What went wrong, fit for a log line: redis-py puts a failed pipeline command with its
    keys (shopper ids among them) in the message; only Redis's own reason is kept."""
    text = _PIPELINE_ERROR.sub("", str(exc))
    return _SHOPPER_SLOT.sub("{u:…}", text)[:200]


@dataclass(frozen=True, slots=True)
class Lease:
    """A partition lease: who holds it and the fencing token it was granted with."""

    partition: int
    owner: str
    token: int


@dataclass(slots=True)
class Loaded:
    partition: PartitionState
    shoppers: dict[str, ShopperState]
    tombstoned: frozenset[str]


def dlq_fields(rejection: Rejection, raw: bytes, source: str, *, user: str, received_ms: int,
               stream_id: str = "", where: str = "") -> list[Any]:  # fmt: skip
    """The field/value pairs of one dead letter (format in ``segmenter.schema``)."""
    fields: list[Any] = [
        "reason", rejection.reason, "field", rejection.field, "raw", raw,
        "source", source, "user", user, "received_ms", str(received_ms),
    ]  # fmt: skip
    if stream_id:
        fields += ["stream_id", stream_id]
    if where:
        fields += ["where", where]
    return fields


@dataclass(slots=True)
class _Lookups:
    """What one batch asks Redis about, in a fixed order."""

    users: list[str]
    ids: dict[int, list[str]]
    sessions: list[str]
    exp_users: list[str]
    anon_exp: list[tuple[str, int]]  # identify: the anonymous id and its partition
    cached: Mapping[str, ShopperState]
    to_read: list[str]

    @classmethod
    def of(
        cls, entries: Sequence[Entry], cached: Mapping[str, ShopperState], partitions: int = 0
    ) -> _Lookups:
        ids: dict[int, list[str]] = {}
        users: set[str] = set()
        sessions: set[str] = set()
        exp_users: set[str] = set()
        anons: set[str] = set()
        for e in entries:  # one pass: once per batch over every entry
            ev = e.event
            if ev is None:
                continue
            day = ev.ts // 86_400_000
            eids = ids.get(day)
            if eids is None:
                eids = ids[day] = []
            eids.append(ev.event_id)
            users.add(ev.user)
            if ev.session:
                sessions.add(f"{ev.user}|{ev.session}")
            if ev.type in EXPERIMENT_EVENTS:
                exp_users.add(ev.user)
            if ev.anon:
                anons.add(ev.anon)
        # An identify merges its anonymous shopper's features: they are read with the batch.
        every = sorted(users | anons)
        return cls(
            users=every,
            cached=cached,
            to_read=[u for u in every if u not in cached],
            ids=ids,
            sessions=sorted(sessions),
            exp_users=sorted(exp_users),
            anon_exp=sorted((a, partition_of(a, partitions)) for a in anons) if partitions else [],
        )

    def parse(self, replies: Iterator[Any], *, one_read: bool) -> Loaded:
        offset, max_ts = next(replies)
        st = PartitionState(offset=(offset or b"0-0").decode(), max_ts=int(max_ts or 0))
        for day, eids in self.ids.items():
            for eid, sid in zip(eids, next(replies), strict=True):
                if sid is not None:
                    st.seen[(day, eid)] = sid.decode()
        for name, raw in zip(self.sessions, next(replies), strict=False):
            if raw is not None:
                ts, items = msgpack.unpackb(raw)
                st.sessions[name] = (ts, items)
        for user, raw in zip(self.exp_users, next(replies), strict=False):
            if raw is not None:
                st.exposed[user] = msgpack.unpackb(raw)
        for anon, _ in self.anon_exp:
            raw = next(replies)
            if raw is not None:
                st.linked_exposed[anon] = msgpack.unpackb(raw)
        tomb = next(replies)
        erased = frozenset(u for u, t in zip(self.users, tomb, strict=False) if t is not None)
        reads = (next(replies) if self.to_read else []) if one_read else replies
        shoppers = {u: from_redis(raw) for u, raw in zip(self.to_read, reads, strict=False)}
        shoppers.update({u: self.cached[u] for u in self.users if u in self.cached})
        return Loaded(st, shoppers, erased)


class Store:
    """Processor I/O on one Redis (or cluster) client.

    ``per_slot``: write through one-slot scripts (required on Redis Cluster); None picks it
    for cluster clients and the batched writes for a single Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        hook: Hook | None = None,
        *,
        per_slot: bool | None = None,
        partitions: int = 0,
    ) -> None:
        cluster = isinstance(client, aioredis.RedisCluster)
        if cluster and per_slot is False:
            raise ValueError("batched writes span hash slots: a cluster needs per-slot writes")
        self.per_slot = cluster if per_slot is None else per_slot
        # Where an identify's anonymous shopper's exposures live (0: not read, not merged).
        self.partitions = partitions
        self.r = client
        self.keys = keys
        self.hook: Hook = hook or (lambda step: None)
        self._sha: dict[str, str] = {}
        self._src = {name: getattr(scripts, name) for name in scripts.__all__}
        for name, src in self._src.items():
            self._sha[name] = hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()

    async def _run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn``; reload scripts once on NOSCRIPT; translate Redis errors."""
        try:
            try:
                return await fn()
            except NoScriptError:
                for src in self._src.values():
                    await self.r.script_load(src)
                return await fn()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {redis_reason(exc)}") from exc

    def _eval(self, target: Any, name: str, keys: Sequence[str], *args: Any) -> Any:
        # execute_command, not .evalsha(): redis-py blocks the evalsha method in cluster
        # pipelines, while the raw command is routed by its first key (all in one slot).
        return target.execute_command("EVALSHA", self._sha[name], len(keys), *keys, *args)

    # -- leases -------------------------------------------------------------------------
    async def acquire(self, partition: int, owner: str, ttl_ms: int) -> Lease | None:
        meta = self.keys.partition_meta(partition)
        token = await self._run(lambda: self._eval(self.r, "LEASE_ACQUIRE", [meta], owner, ttl_ms))
        return None if token is None else Lease(partition, owner, int(token))

    async def renew(self, lease: Lease, ttl_ms: int) -> bool:
        meta = self.keys.partition_meta(lease.partition)
        ok = await self._run(
            lambda: self._eval(self.r, "LEASE_RENEW", [meta], lease.owner, lease.token, ttl_ms)
        )
        return bool(ok)

    async def release(self, lease: Lease) -> None:
        meta = self.keys.partition_meta(lease.partition)
        await self._run(
            lambda: self._eval(self.r, "LEASE_RELEASE", [meta], lease.owner, lease.token)
        )

    # -- load ---------------------------------------------------------------------------
    async def load(
        self, partition: int, entries: Sequence[Entry], cached: Mapping[str, ShopperState]
    ) -> Loaded:
        """Everything the operators read for this batch, in one pipelined round trip.

        Shoppers in ``cached`` are not read again (their writes are compare-and-set)."""
        q = _Lookups.of(entries, cached, self.partitions)
        k = self.keys

        async def go() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            pipe.hmget(k.partition_meta(partition), ["offset", "max_ts"])
            for day, eids in q.ids.items():
                pipe.hmget(k.event_ids(partition, day), eids)
            pipe.hmget(k.sessions(partition), q.sessions or ["-"])
            pipe.hmget(k.exposed(partition), q.exp_users or ["-"])
            for anon, p in q.anon_exp:  # another partition's slot: read, never written here
                pipe.hget(k.exposed(p), anon)
            pipe.hmget(k.tombstones, [tombstone_digest(u) for u in q.users] or ["-"])
            if not self.per_slot and q.to_read:
                keys = [key for u in q.to_read for key in k.shopper_keys(u)]
                self._eval(pipe, "READ_SHOPPERS", keys)
            elif self.per_slot:
                for u in q.to_read:
                    self._eval(pipe, "READ_SHOPPER", k.shopper_keys(u))
            return list(await pipe.execute())

        return q.parse(iter(await self._run(go)), one_read=not self.per_slot)

    async def erased(self, users: Sequence[str]) -> list[str]:
        """The shoppers among ``users`` that have an erasure tombstone now."""
        wanted = sorted(set(users))
        if not wanted:
            return []
        digests = [tombstone_digest(u) for u in wanted]
        marks = await self._run(lambda: self.r.hmget(self.keys.tombstones, digests))
        return [u for u, mark in zip(wanted, marks, strict=True) if mark is not None]

    # -- writes -------------------------------------------------------------------------
    async def write(self, lease: Lease, expected_offset: str, st: PartitionState,
                    fx: PartitionEffects, shoppers: Sequence[ShopperWrite], *,
                    lease_ttl_ms: int, chunk: int = 500,
                    watch: Sequence[str] = ()) -> Written:  # fmt: skip
        """Write a decided batch: "OK", "FENCED", "OFFSET", or "CONFLICT" with the users
        someone else changed (nothing of the partition is committed then); and, when the
        batched write committed, which of ``watch`` have a tombstone by then (else None: ask
        ``erased``)."""
        if not self.per_slot:
            return await self._write_batched(lease, expected_offset, st, fx, shoppers,
                                             lease_ttl_ms=lease_ttl_ms, watch=watch)  # fmt: skip
        await self.write_dead(lease.partition, fx.dead)
        conflicts = await self.write_shoppers(shoppers, chunk)
        if conflicts:
            return "CONFLICT", conflicts, None
        return await self.commit(lease, expected_offset, st, fx, lease_ttl_ms), [], None

    async def write_dead(self, partition: int, dead: Sequence[tuple[Entry, Rejection]]) -> None:
        """Dead letters of processor entries, each written once per source entry."""
        if not dead:
            return
        self.hook("dlq")
        k = self.keys

        async def go() -> None:
            pipe = self.r.pipeline(transaction=False)
            for entry, rej in dead:
                user = entry.event.user if entry.event else ""
                src = f"p{partition}:{entry.stream_id}"
                fields = dlq_fields(
                    rej, entry.raw, "processor", user=user, received_ms=entry.key[0],
                    stream_id=entry.stream_id,
                )  # fmt: skip
                self._eval(pipe, "DLQ_ADD", [k.dlq, k.dlq_sources], src, DLQ_MAXLEN, *fields)
            await pipe.execute()

        await self._run(go)

    async def write_shoppers(self, writes: Sequence[ShopperWrite], chunk: int) -> list[str]:
        """Per-slot compare-and-set writes ``(user, expected last_id, diff)``; users in
        conflict."""
        conflicts: list[str] = []
        for start in range(0, len(writes), chunk):
            part = writes[start : start + chunk]
            self.hook("shoppers")

            async def go(part: Sequence[ShopperWrite] = part) -> list[Any]:
                pipe = self.r.pipeline(transaction=False)
                for user, expected, diff in part:
                    keys = self.keys.shopper_keys(user)
                    packed = msgpack.packb(diff, use_bin_type=False)
                    self._eval(pipe, "WRITE_SHOPPER", keys, expected, packed, SHOPPER_TTL_S)
                return list(await pipe.execute())

            results = await self._run(go)
            conflicts += [w[0] for w, ok in zip(part, results, strict=True) if not ok]
        return conflicts

    async def commit(self, lease: Lease, expected_offset: str, st: PartitionState,
                     fx: PartitionEffects, lease_ttl_ms: int) -> str:  # fmt: skip
        """The per-slot atomic apply; returns "OK", "FENCED" or "OFFSET"."""
        keys, payload = self._commit_payload(lease.partition, st, fx)
        self.hook("commit")
        args = (lease.owner, lease.token, expected_offset, st.offset, GROUP, lease_ttl_ms, payload)
        reply = await self._run(lambda: self._eval(self.r, "COMMIT", keys, *args))
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def _write_batched(self, lease: Lease, expected_offset: str, st: PartitionState,
                             fx: PartitionEffects, shoppers: Sequence[ShopperWrite], *,
                             lease_ttl_ms: int,
                             watch: Sequence[str]) -> Written:  # fmt: skip
        """Dead letters (rare; written first, as per slot), then the whole batch in one APPLY
        script, which also looks up ``watch``'s tombstones once committed."""
        await self.write_dead(lease.partition, fx.dead)
        keys, payload = self._commit_payload(lease.partition, st, fx)
        by_base: dict[int, str] = {}
        ws = []
        for user, expected, diff in shoppers:
            by_base[len(keys)] = user
            ws.append((len(keys), expected, diff))
            keys += self.keys.shopper_keys(user)
        keys.append(self.keys.tombstones)
        watched = sorted(set(watch))
        digests = msgpack.packb([tombstone_digest(u) for u in watched], use_bin_type=False)
        packed = msgpack.packb(ws, use_bin_type=False)
        args = (lease.owner, lease.token, expected_offset, st.offset, GROUP, lease_ttl_ms,
                payload, packed, SHOPPER_TTL_S, digests, len(keys))  # fmt: skip
        self.hook("commit")
        reply = await self._run(lambda: self._eval(self.r, "APPLY", keys, *args))
        if isinstance(reply, list) and reply[:1] in ([b"OK"], ["OK"]):
            return "OK", [], [watched[int(i) - 1] for i in reply[1:]]
        if isinstance(reply, list):
            return "CONFLICT", [by_base[int(b)] for b in reply], None
        return (reply.decode() if isinstance(reply, bytes) else str(reply)), [], None

    def _commit_payload(
        self, p: int, st: PartitionState, fx: PartitionEffects
    ) -> tuple[list[str], bytes]:
        k = self.keys
        keys = list(k.partition_keys(p))

        def idx(key: str) -> int:
            keys.append(key)
            return len(keys)  # Lua indexes from 1

        now_s = st.max_ts // 1000
        window_s = (POPULARITY_BUCKETS + 1) * POPULARITY_BUCKET_S
        pop = [
            [idx(k.popularity(p, b)), max(60, (b * POPULARITY_BUCKET_S) + window_s - now_s),
             [x for item, inc in c.items() for x in (item, inc)]]
            for b, c in sorted(fx.pop.items())
        ]  # fmt: skip
        payload = {
            "ack": fx.ack,
            "max_ts": str(st.max_ts),
            "cnt": [x for n in ("applied", "duplicate", "late", "dead", "erased")
                    if fx.counters[n] for x in (n, fx.counters[n])],
            "late": [x for n, c in sorted(fx.late.items()) for x in (n, c)],
            "eid": [[idx(k.event_ids(p, d)), 2 * DEDUPE_TTL_S, v] for d, v in fx.eids.items()],
            "pop": pop,
            "cov": [[idx(k.covisitation(p, item)), SHOPPER_TTL_S,
                     [x for nb, inc in c.items() for x in (nb, inc)]]
                    for item, c in fx.covis.items()],
            "cap": COVIS_MAX,
            "occ": [idx(k.occurrences(p)), [x for i, c in sorted(fx.occ.items()) for x in (i, c)]],
            "exp": [[idx(k.experiment_counts(p, key)),
                     [x for f, c in sorted(cnt.items()) for x in (f, c)]]
                    for key, cnt in fx.exp.items()],
            "ss": [x for name, v in fx.sessions.items() for x in (name, msgpack.packb(list(v)))],
            "si": [x for name, v in fx.sessions.items() for x in (v[0], name)],
            "cut": str(st.max_ts - SESSION_GAP_MS),
            "xs": [x for u, v in fx.exposed.items() for x in (u, msgpack.packb(v))],
        }  # fmt: skip
        return keys, msgpack.packb(payload, use_bin_type=False)
