"""The contract shared by every tier: tokens, segment hashing, A/B bucketing, keys and tags.

Standard library only, so it runs unchanged in Pyodide (the Cloudflare Worker) and CPython.
"""

from cache_keys import bucketing, experiments, wire
from cache_keys.errors import CacheKeysError, KeyPartError, TagError, WireError
from cache_keys.keys import CacheKey, build_key, cache_tag_header, compose_tags, tag
from cache_keys.segments import ANON_HSEG, Hseg, hash_segment, is_hseg, parse_hseg
from cache_keys.tokens import (
    KeyRing,
    SigningKey,
    is_shopper_id,
    new_shopper_id,
    sign_segment,
    verify_segment,
)

__all__ = [
    "ANON_HSEG",
    "CacheKey",
    "CacheKeysError",
    "Hseg",
    "KeyPartError",
    "KeyRing",
    "SigningKey",
    "TagError",
    "WireError",
    "bucketing",
    "build_key",
    "cache_tag_header",
    "compose_tags",
    "experiments",
    "hash_segment",
    "is_hseg",
    "is_shopper_id",
    "new_shopper_id",
    "parse_hseg",
    "sign_segment",
    "tag",
    "verify_segment",
    "wire",
]
