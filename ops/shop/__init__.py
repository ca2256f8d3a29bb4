"""The one simulated shop: the simulator's world, the seeded event stream, exported histories.

    world    catalog and shoppers that ``p13n simulate`` / ``p13n demo`` drive over HTTP
    stream   a seeded event stream (Zipf items, sessions, funnels) for tests and benches
    history  a shop's purchase history as an events file (grocery-like or fashion-like),
             what ``p13n evaluate`` and ``bench/quality.py`` replay

Same seed, same shop: every part is deterministic for its seed.
"""

from __future__ import annotations

from ops.shop.stream import Shop, events
from ops.shop.world import Shopper, World

__all__ = ["Shop", "Shopper", "World", "events"]
