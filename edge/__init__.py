"""The edge: a pure decision core, the one rail flow, and the Cloudflare Worker (stdlib only).

The core does no I/O and takes the time as an argument; ``edge.flow.RailFlow`` runs the whole
rail sequence on it against three ports (``edge.ports``: origin, entry cache, background), so
the Cloudflare Worker (``edge.worker``: JS fetch, Cache API, waitUntil) and the self-hosted
edge proxy (``edge.proxy``, the only part allowed third-party imports, never shipped to
Cloudflare) make the same decisions and the same fallbacks::

    plan = decide(RequestParts.from_http(route, headers, query), config, settings, now_ms)
    entry = decode_entry(stored_body)            # from the cache, by plan.key
    fresh = freshness(entry, plan.policy, config, now_ms)
    answer = answer_from_list(plan, entry.seglist.items, config.item_mask, ...)
"""

from edge.answer import (
    Answer,
    answer_from_list,
    answer_from_rail,
    cache_status,
    exposure_batch,
    response_headers,
)
from edge.assign import Assignment, Routing, assign_all, routing
from edge.entry import Entry, decode_entry, encode_entry, entry_tags, stored_headers
from edge.errors import EdgeError, SettingsError
from edge.freshness import Freshness, State, freshness
from edge.identity import Identity, is_opted_out, resolve_identity
from edge.plan import Plan, decide, key_generation, with_segment_grant
from edge.request import RequestParts, device_class, pick_locale, rail_route, requested_k
from edge.rerank import DEFAULT_WEIGHTS, Ranked, rerank
from edge.settings import EdgeSettings, parse_keyring, settings_from_env

__all__ = [
    "DEFAULT_WEIGHTS",
    "Answer",
    "Assignment",
    "EdgeError",
    "EdgeSettings",
    "Entry",
    "Freshness",
    "Identity",
    "Plan",
    "Ranked",
    "RequestParts",
    "Routing",
    "SettingsError",
    "State",
    "answer_from_list",
    "answer_from_rail",
    "assign_all",
    "cache_status",
    "decide",
    "decode_entry",
    "device_class",
    "encode_entry",
    "entry_tags",
    "exposure_batch",
    "freshness",
    "is_opted_out",
    "key_generation",
    "parse_keyring",
    "pick_locale",
    "rail_route",
    "requested_k",
    "rerank",
    "resolve_identity",
    "response_headers",
    "routing",
    "settings_from_env",
    "stored_headers",
    "with_segment_grant",
]
