"""The edge: a pure decision core and the Cloudflare Worker entry (stdlib only).

``edge.proxy`` is the self-hosted edge proxy; it is the only part allowed third-party imports
and the Worker never ships it.
"""
