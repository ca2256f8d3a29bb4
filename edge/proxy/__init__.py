"""The self-hosted edge proxy: a standards-correct shared HTTP cache in front of the origin.

Personalization routes (``/p13n/v1/...``) go through the edge decision core; everything else
is proxied and cached per RFC 9111 (HTTP caching), RFC 5861 (stale-while-revalidate,
stale-if-error) and RFC 9213 (CDN-Cache-Control). This subpackage is the only part of
``edge`` that may import third-party libraries; the Cloudflare Worker never ships it.
"""
