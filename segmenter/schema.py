"""The Redis schema: every key, stream, channel and TTL of the online store, in one place.

Layout (``P`` is the namespace prefix, ``p13n`` unless configured)::

    P:{u:<sid>}:f          hash   shopper scalars: last applied stream id per partition
                                  (``last_id``), segment, hseg, first/last seen, event count
    P:{u:<sid>}:recent     list   recently viewed items, newest first, capped
    P:{u:<sid>}:cart       hash   item -> quantity
    P:{u:<sid>}:bought     hash   item -> "count|last_ms|first_ms|purchases|pif|basket"
    P:{u:<sid>}:aff        hash   category -> "score|as_of_ms" (exponentially decayed)
    P:{u:<sid>}:exp        hash   experiment -> "variant|first_exposure_ms"
    P:{u:<sid>}:link       string anonymous ids only: "<session>|<customer id>", set when
                                  the shopper signs in (identify); later events of that
                                  session are credited to the customer (LINK_TTL_S)
    P:{u:<sid>}:anons      set    customer ids only: the anonymous ids that signed in as the
                                  customer (erasing the customer erases them too)
    P:{u:<sid>}:signins    set    anonymous ids only: the customer ids it signed in as (kept
                                  like ``anons``, unlike the link: erasing only the anonymous
                                  id removes it from those customers' records)

``<sid>`` is the shopper's hash-tag form (``shopper_tag``): an anonymous id as is, a
customer id (the shop's own id, maybe PII) as ``c.`` plus a digest, so no customer id is
ever part of a key name.
    P:{p:<n>}:events       stream the partition's event stream (consumer group ``GROUP``)
    P:{p:<n>}:meta         hash   applied offset, watermark, lease owner and fencing token
    P:{p:<n>}:eid:<day>    hash   event id -> stream id first applying it, per UTC day of the
                                  event time (client-retry dedupe; kept 48 h)
    P:{p:<n>}:pop:<bucket> zset   item -> weighted count in one time bucket
    P:{p:<n>}:covis:<item> zset   co-visited item -> weight, capped per item
    P:{p:<n>}:occ          hash   item -> its own weight in sessions (normalizes co-visitation)
    P:{p:<n>}:exp:<key>    hash   per variant: exposures, conversions, carts, orders, revenue and
                                  per-shopper moments; per UTC day exposures and
                                  conversions (origin/admin/metrics.py reads them)
    P:{p:<n>}:late         hash   late-event counters
    P:{p:<n>}:sess         hash   "<user>|<session>" -> msgpack [last_ts, items…] (co-visitation)
    P:{p:<n>}:sessidx      zset   "<user>|<session>" -> last event ms (to expire idle sessions)
    P:{p:<n>}:imports      hash   bulk-import file digest -> last file line imported to this
                                  partition (written with the entries, atomically:
                                  ``p13n import events`` resumes and never imports twice)
    P:{p:<n>}:expsh        hash   user -> msgpack {experiment: [variant, first_exposure_ms,
                                  converted_ms or 0, revenue cents, orders, carted_ms or 0]}
                                  (distinct exposures and conversions, per-shopper sums;
                                  an identify copies the anonymous id's into the customer's)
    P:{dlq}:events         stream dead letters: reason, field, original bytes, source
    P:{dlq}:src            hash   "p<n>:<stream id>" -> DLQ entry id (processor DLQ writes once)
    P:{seg}:members        zset   processor (consumer name:run id) -> heartbeat deadline ms
    P:{lists}:seg:<hseg>:<variant>  string  msgpack segment list
    P:{lists}:registry     hash   hseg -> msgpack {segment, lists: {variant: etag}}
    P:{lists}:popular      string msgpack global popular list (degraded-mode fallback)
    P:{lists}:lock         string owner of the list build in progress (SET NX PX)
    P:{lists}:stats        hash   the shop's behaviour as the list build measured it:
                                  repeat_share (share of purchases that repeat an item
                                  the same shopper bought before), purchases (its sample),
                                  items (the etag of ``items``), recent_weight (how much
                                  the repurchase rate follows recent baskets:
                                  ``segmenter.recency``; absent until learned)
    P:{lists}:items        string msgpack [[item, purchases, category], ...]: the shop's
                                  purchases of its best sellers (lists.ITEM_STATS_MAX)
    P:{admin}:…            admin state: experiments, catalog, generations, item mask,
                           invalidations, audit log, tombstones, edge heartbeats (and their
                           recent history), tokens, the last reconciliation report (JSON),
                           the global holdout's share

Value formats (shared by the segmenter, which writes features and lists, and the origin, which
reads them and writes admin state)::

    :f fields        last_id (stream id "ms-seq" of the last applied entry), seg (segment
                     name), hseg, first_ms, last_ms, events (count), orders (purchase
                     events), psum / pcnt (sum and count of prices seen, for the price band),
                     baskets (purchase baskets so far), bkey (the last basket's session, or
                     "@<event ms // SESSION_GAP_MS>" for purchases without one)
    :recent          item ids, newest first (LPUSH + LTRIM to RECENT_MAX)
    :cart            item -> quantity (int); a purchase removes the purchased items
    :bought          item -> "count|last_ms|first_ms|purchases|pif|basket": quantity bought,
                     last and first purchase event times, purchase events, the item's
                     basket-decayed frequency (repr float) as of basket number ``basket``;
                     at basket B it is pif * PIF_DECAY_PER_BASKET ** (B - basket) (older
                     values "count|last_ms|first_ms|purchases" or "count|last")
    :aff             category -> "score|as_of_ms"; score decays with a half-life from as_of_ms
    :exp (shopper)   experiment key -> "variant|first_exposure_ms"
    :exp:<key> (partition) fields x:<variant> (distinct exposed shoppers), c:<variant>
                     (distinct converted shoppers), r:<variant> (revenue in integer cents, so
                     sums are exact), o:<variant> (orders); <variant> is the variation's name;
                     bot events never count (the origin's results subtract the experiment's
                     results_baseline after a re-seed)
    :meta fields     offset (last applied stream id), max_ts (largest event time seen; the
                     watermark is max_ts minus the allowed lateness), owner, token (fencing
                     counter), lease_until_ms, and counters applied, duplicate, late, dead,
                     erased
    :late            total and one counter per event type
    :pop:<bucket>    bucket = event time // POPULARITY_BUCKET_S; member item, score = integer
                     weighted count (view 1, add_to_cart 3, purchase 5 x qty)
    :covis:<item>    member item, score = integer weight; at most COVIS_MAX members: once
                     full only existing members gain weight (independent of batch sizes);
                     an event of item b in a session adds COVIS_WEIGHTS[type] (view 1, cart
                     2, purchase 3) to co(a, b) and co(b, a) for each other item a there, so
                     a basket bought together (viewed, then bought) weighs 4, a co-view 1
    :occ             item -> integer sum of the same weights over the item's own events in
                     sessions: the origin's similarity is co(a, b) / sqrt(occ(a) occ(b))
    seg:<hseg>:<v>   msgpack of ``cache_keys.wire.segment_list_to_json`` (the wire form)
    registry         hseg -> msgpack {"segment": name, "lists": {variant: etag}}
    popular          msgpack of a segment-list wire form with hseg = ANON_HSEG, variant control
    dlq entries      reason, field, raw (the original bytes), source (collector | processor |
                     import), user (when it could be read), received_ms, stream_id
                     (processor only), where ("file:line", import only)
    catalog values   JSON {"category": str, "price": float, "stock": int, "durable": bool,
                     "updated_ms": int, and when set "name", "image_url", "category_path"}
    experiments      JSON: the wire form of ``cache_keys.wire.Experiment`` plus admin fields
                     (name, description, version, created_ms, updated_ms, results_from_ms)
    gens             tag -> "soft,hard"; tag "*" means everything; a soft purge bumps soft, a
                     hard purge both (one Lua step, written only by the origin)
    mask             sku (catalog case) -> ms masked; added by hard sku purges and by going
                     out of stock, removed when the catalog restocks the sku
    inv              invalidation id -> JSON {id, tags, mode, reason, who, created_ms,
                     generations: {tag: [soft, hard]}, mask_add, pushed_to_subscribers,
                     cloudflare: {status, calls, detail, retry_after_s, errors},
                     revision (the config version it bumped), scheduled_for_ms,
                     state "scheduled" until applied, applied_by: {edge id: ms first seen}}
    merch            rule name -> JSON merchandising rule {name, kind, skus, category,
                     routes, segments (names), position, factor, start_ms, end_ms, reason,
                     who, created_ms}
    sched / :jobs    job id -> due ms (zset) / JSON job {id, kind, payload, due_ms, role,
                     fingerprint, status: scheduled | claimed | applied | failed}
    edges            edge id -> JSON heartbeat {edge_id, config_etag, config_revision,
                     applied_purges: [id], generations: {tag: [soft, hard]} (older edges),
                     counts: {hit, stale, miss}, received_ms}
    edgehist entries edge (edge id), ms (received), counts (JSON of the heartbeat's
                     cumulative counts); the console charts hit ratio and freshness from
                     the differences between an edge's consecutive entries
    audit entries    ms, who (role:token fingerprint), action, target, before, after (JSON)
    exphist:<key>    earlier experiment records (JSON), newest first, at most 100
    tomb             ``tombstone_digest(sid)`` -> ms erased

Hash tags: every per-shopper key carries ``{u:<sid>}`` and every per-partition key
``{p:<n>}``, so the writes of one shopper, or one partition's aggregates together with its
applied offset, always land in one Redis Cluster slot and can be applied atomically (MULTI or
one Lua script). Admin state shares ``{admin}`` for the same reason. Aggregates kept per
partition are merged on read. Everything per shopper has a TTL.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ADMIN_AUDIT_MAXLEN",
    "AFFINITY_MAX",
    "BOUGHT_MAX",
    "COVIS_MAX",
    "DEDUPE_TTL_S",
    "DEFAULT_PARTITIONS",
    "DEFAULT_PREFIX",
    "DLQ_MAXLEN",
    "EDGE_HISTORY_MAXLEN",
    "GROUP",
    "LINK_TTL_S",
    "PIF_DECAY_PER_BASKET",
    "POPULARITY_BUCKETS",
    "POPULARITY_BUCKET_S",
    "RECENT_MAX",
    "SESSION_GAP_MS",
    "SESSION_ITEMS_MAX",
    "SHOPPER_TTL_S",
    "STREAM_MAXLEN",
    "Keys",
    "group_backlog",
    "partition_of",
    "shopper_tag",
    "tombstone_digest",
]

DEFAULT_PREFIX = "p13n"
DEFAULT_PARTITIONS = 8
# The consumer group every processor process joins.
GROUP = "segmenter"
# A shopper unseen for 90 days starts over: features, cart and exposures all expire.
SHOPPER_TTL_S = 90 * 86400
# An anonymous id's sign-in link lasts a day: long enough for any session it names.
LINK_TTL_S = 86400
# Client retries are deduped by event id for 24 h (producers retry within minutes).
DEDUPE_TTL_S = 86400
# Recently viewed items kept per shopper.
RECENT_MAX = 50
# Purchased items kept per shopper (least recently bought dropped first).
BOUGHT_MAX = 200
# Personal item frequency: each newer basket multiplies an older basket's weight by this. The
# default of TIFU-KNN (Hu et al., SIGIR 2020) is 0.9 within a group of baskets, 0.6-0.7
# between groups of 3-7; about 0.9 per basket overall. Not fitted to any data set here.
PIF_DECAY_PER_BASKET = 0.9
# Categories kept in a shopper's affinity (lowest decayed score dropped first).
AFFINITY_MAX = 50
# Co-visited neighbours kept per item.
COVIS_MAX = 50
# A session ends after 30 minutes without events (event time); it remembers its last items.
SESSION_GAP_MS = 30 * 60 * 1000
SESSION_ITEMS_MAX = 10
# Popularity in 1-hour buckets, 48 kept: "trending" reads the last few, "popular" all.
POPULARITY_BUCKET_S = 3600
POPULARITY_BUCKETS = 48
# Approximate MAXLEN per partition stream (every XADD: collector, replay, dlq requeue): at
# 2,000 events/s over 8 partitions this holds about 30 minutes, far above the worst lag we
# alert on (60 s). Trimming does not wait for the processor: an entry trimmed before it was
# delivered is lost without a trace (not applied, not archived, not dead-lettered, not
# counted: the archive is written by the processor); one trimmed while pending is
# dead-lettered as "entry trimmed" with empty bytes (docs/RUNBOOK.md, consumer-lag spike).
STREAM_MAXLEN = 500_000
ADMIN_AUDIT_MAXLEN = 100_000
# Dead letters are kept until an operator requeues or trims them (bounded as a safety net).
DLQ_MAXLEN = 1_000_000
# Heartbeat history: 20 edges beating every 3 s for an hour; the console charts 15 minutes.
EDGE_HISTORY_MAXLEN = 24_000


def partition_of(user: str, partitions: int) -> int:
    """The stream partition of a shopper: stable across processes and releases.

    >>> partition_of("u1", 8)
    5
    """
    digest = hashlib.blake2b(user.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def group_backlog(groups: Iterable[Mapping[Any, Any]]) -> dict[str, int]:
    """The consumer group's backlog on one stream, from XINFO GROUPS (zeros when absent).

    ``lag`` entries not yet delivered, ``pending`` delivered but not acknowledged, ``behind``
    their sum: what the processor still has to apply. The one lag figure every tool shows.
    """
    for g in groups:
        if g.get("name") in (GROUP, GROUP.encode()):
            lag, pending = int(g.get("lag") or 0), int(g.get("pending") or 0)
            return {"lag": lag, "pending": pending, "behind": lag + pending}
    return {"lag": 0, "pending": 0, "behind": 0}


def tombstone_digest(sid: str) -> str:
    """How an erased shopper is remembered: a digest, so the tombstone list holds no ids."""
    return hashlib.sha256(b"p13n-tombstone:" + sid.encode("utf-8")).hexdigest()[:32]


_ANON_ID = re.compile(r"[A-Za-z0-9_-]{22}")


# Bounded small: each entry keeps an id and its tag (~270 B), and new ids arrive for as long
# as a shop runs (one-visit bots), so 65,536 entries grew the processor and the origin by
# ~2 MB/h for 9 hours; a miss costs one regex and, for a customer id, one blake2b.
@functools.lru_cache(maxsize=4096)
def shopper_tag(sid: str) -> str:
    """A shopper's form inside its hash tag: anonymous ids (random, 22 characters) as they
    are; any other id, a shop's customer id, as a digest.

    >>> shopper_tag("cust_48213")
    'c.455f50651185c16061d75823'
    """
    if _ANON_ID.fullmatch(sid):
        return sid
    return "c." + hashlib.blake2b(sid.encode("utf-8"), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builders for one namespace prefix."""

    prefix: str = DEFAULT_PREFIX

    # -- per shopper: hash tag {u:<sid>} -------------------------------------------------
    def shopper(self, sid: str) -> str:
        return f"{self.prefix}:{{u:{shopper_tag(sid)}}}:f"

    def recent(self, sid: str) -> str:
        return f"{self.prefix}:{{u:{shopper_tag(sid)}}}:recent"

    def cart(self, sid: str) -> str:
        return f"{self.prefix}:{{u:{shopper_tag(sid)}}}:cart"

    def bought(self, sid: str) -> str:
        return f"{self.prefix}:{{u:{shopper_tag(sid)}}}:bought"

    def affinity(self, sid: str) -> str:
        return f"{self.prefix}:{{u:{shopper_tag(sid)}}}:aff"

    def exposures(self, sid: str) -> str:
        return f"{self.prefix}:{{u:{shopper_tag(sid)}}}:exp"

    def link(self, anon: str) -> str:
        """An anonymous id's sign-in link (see the layout)."""
        return f"{self.prefix}:{{u:{shopper_tag(anon)}}}:link"

    def anons(self, customer: str) -> str:
        """The anonymous ids that signed in as a customer (see the layout)."""
        return f"{self.prefix}:{{u:{shopper_tag(customer)}}}:anons"

    def signins(self, anon: str) -> str:
        """The customer ids an anonymous id signed in as (see the layout)."""
        return f"{self.prefix}:{{u:{shopper_tag(anon)}}}:signins"

    def shopper_keys(self, sid: str) -> tuple[str, ...]:
        """Every key of one shopper (for erasure and TTL refresh), in the order of the
        builders above (``f``, ``recent``, ``cart``, ``bought``, ``aff``, ``exp``)."""
        base = f"{self.prefix}:{{u:{shopper_tag(sid)}}}:"  # one tag for the six
        return (base + "f", base + "recent", base + "cart", base + "bought", base + "aff",
                base + "exp")  # fmt: skip

    # -- per partition: hash tag {p:<n>} -------------------------------------------------
    def stream(self, partition: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:events"

    def partition_meta(self, partition: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:meta"

    def event_ids(self, partition: int, day: int) -> str:
        """Event ids seen on one UTC day (``day`` = event ms // 86,400,000)."""
        return f"{self.prefix}:{{p:{partition}}}:eid:{day}"

    def popularity(self, partition: int, bucket: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:pop:{bucket}"

    def covisitation(self, partition: int, item: str) -> str:
        return f"{self.prefix}:{{p:{partition}}}:covis:{item}"

    def occurrences(self, partition: int) -> str:
        """hash item -> the item's own co-visitation weight (the similarity's norm)."""
        return f"{self.prefix}:{{p:{partition}}}:occ"

    def experiment_counts(self, partition: int, key: str) -> str:
        return f"{self.prefix}:{{p:{partition}}}:exp:{key}"

    def late_counts(self, partition: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:late"

    def sessions(self, partition: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:sess"

    def session_index(self, partition: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:sessidx"

    def exposed(self, partition: int) -> str:
        return f"{self.prefix}:{{p:{partition}}}:expsh"

    def imports(self, partition: int) -> str:
        """Bulk imports' progress on this partition: file digest -> last line imported."""
        return f"{self.prefix}:{{p:{partition}}}:imports"

    def partition_keys(self, partition: int) -> tuple[str, ...]:
        """The fixed keys of one partition (used by the atomic apply)."""
        return (
            self.stream(partition),
            self.partition_meta(partition),
            self.late_counts(partition),
            self.sessions(partition),
            self.session_index(partition),
            self.exposed(partition),
        )

    # -- dead letters ---------------------------------------------------------------------
    @property
    def dlq(self) -> str:
        return f"{self.prefix}:{{dlq}}:events"

    @property
    def dlq_sources(self) -> str:
        return f"{self.prefix}:{{dlq}}:src"

    # -- processor membership: hash tag {seg} --------------------------------------------
    @property
    def members(self) -> str:
        return f"{self.prefix}:{{seg}}:members"

    # -- segment lists: hash tag {lists} -------------------------------------------------
    def segment_list(self, hseg: str, variant: str) -> str:
        return f"{self.prefix}:{{lists}}:seg:{hseg}:{variant}"

    @property
    def list_registry(self) -> str:
        return f"{self.prefix}:{{lists}}:registry"

    @property
    def popular_list(self) -> str:
        return f"{self.prefix}:{{lists}}:popular"

    @property
    def shop_stats(self) -> str:
        return f"{self.prefix}:{{lists}}:stats"

    @property
    def item_stats(self) -> str:
        return f"{self.prefix}:{{lists}}:items"

    @property
    def list_lock(self) -> str:
        return f"{self.prefix}:{{lists}}:lock"

    # -- admin state: hash tag {admin} ---------------------------------------------------
    @property
    def experiments(self) -> str:
        """hash key -> JSON of the current experiment definition."""
        return f"{self.prefix}:{{admin}}:experiments"

    def experiment_history(self, key: str) -> str:
        """list of earlier JSON versions of one experiment, newest first (for rollback)."""
        return f"{self.prefix}:{{admin}}:exphist:{key}"

    @property
    def catalog(self) -> str:
        """hash sku -> JSON {category, price, stock, durable}."""
        return f"{self.prefix}:{{admin}}:catalog"

    @property
    def generations(self) -> str:
        """hash tag -> "soft,hard" generation counters."""
        return f"{self.prefix}:{{admin}}:gens"

    @property
    def item_mask(self) -> str:
        """zset sku -> ms when masked (recently out of stock)."""
        return f"{self.prefix}:{{admin}}:mask"

    @property
    def invalidations(self) -> str:
        """hash id -> JSON invalidation record and status."""
        return f"{self.prefix}:{{admin}}:inv"

    @property
    def audit(self) -> str:
        """stream of admin changes: who, when, before, after."""
        return f"{self.prefix}:{{admin}}:audit"

    @property
    def tombstones(self) -> str:
        """hash erased-shopper digest -> ms erased (right to erasure)."""
        return f"{self.prefix}:{{admin}}:tomb"

    def console_revoked(self, nonce: str) -> str:
        """a signed-out console session's nonce, expiring with the session's cookie."""
        return f"{self.prefix}:{{admin}}:console:revoked:{nonce}"

    @property
    def edges(self) -> str:
        """hash edge id -> JSON heartbeat."""
        return f"{self.prefix}:{{admin}}:edges"

    @property
    def edge_history(self) -> str:
        """stream of heartbeats' counts (edge, ms, counts), capped: hit ratio over time."""
        return f"{self.prefix}:{{admin}}:edgehist"

    @property
    def reconcile_report(self) -> str:
        """string: JSON of the last reconciliation run (segmenter.reconcile_run)."""
        return f"{self.prefix}:{{admin}}:reconcile"

    @property
    def reconcile_lock(self) -> str:
        """string: owner of the scheduled reconciliation in progress (SET NX PX)."""
        return f"{self.prefix}:{{admin}}:reconcile:lock"

    @property
    def holdout(self) -> str:
        """string: JSON {share, updated_ms} of the global holdout (absent: the setting's)."""
        return f"{self.prefix}:{{admin}}:holdout"

    @property
    def merch_rules(self) -> str:
        """hash rule name -> JSON merchandising rule (``origin.admin.merch_rules``)."""
        return f"{self.prefix}:{{admin}}:merch"

    def guardrails(self, experiment: str) -> str:
        """hash ``n|s|f:<variant>`` -> origin answers, slow ones, degraded ones (guardrails)."""
        return f"{self.prefix}:{{admin}}:guard:{experiment}"

    @property
    def guardrail_lock(self) -> str:
        """string: the origin process checking the guardrails this round (SET NX PX)."""
        return f"{self.prefix}:{{admin}}:guard:lock"

    @property
    def schedule(self) -> str:
        """sorted set job id -> due epoch ms: scheduled admin changes (origin.admin.schedule)."""
        return f"{self.prefix}:{{admin}}:sched"

    @property
    def schedule_jobs(self) -> str:
        """hash job id -> JSON job (what to do, who asked, when, its status)."""
        return f"{self.prefix}:{{admin}}:sched:jobs"

    @property
    def config_version(self) -> str:
        """string counter bumped on every change that alters the edge config."""
        return f"{self.prefix}:{{admin}}:cfgver"

    # -- pub/sub --------------------------------------------------------------------------
    @property
    def purge_channel(self) -> str:
        return f"{self.prefix}:purge"
