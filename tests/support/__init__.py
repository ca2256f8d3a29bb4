"""Helpers the tests import (conftest files hold only fixtures, and no test imports one).

- ``timing``: the session's slowdown factor, ``scaled`` deadlines, ``wait_until`` polls
- ``process``: ``Process``, the one runner of child processes (ready, stop by PID, close all)
- ``servers``: ``OriginProcess`` and ``EdgeProcess`` (``p13n origin`` / ``p13n edge``)
- ``clock``: ``FakeClock``, the one fake clock
- ``data``: seed data (tokens, keys, shoppers, the seeded shop) and Redis writers
- ``asgi``: ``app_client``, an ASGI app in-process with its lifespan
- ``backends``: single Redis or Redis Cluster, for parametrized ``redis_url`` fixtures
- ``edge``, ``proxy``, ``worker``, ``standin_origin``: the edge core's builders, the
  self-hosted edge's builders, the Worker's rig and the origin it stands in front of
- ``segmenter``, ``ops``, ``browser``: the processor's, the operator CLI's and the
  console's helpers
"""
