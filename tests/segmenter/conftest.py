"""The segmenter's store tests run twice: on one Redis and on a real Redis Cluster.

The cluster variant proves the processor's scripts, pipelines and commits never cross a
hash slot (a CROSSSLOT error would fail them) and that its exactly-once accounting holds.
"""

from __future__ import annotations

import pytest

from tests.support.backends import BACKENDS


@pytest.fixture(params=BACKENDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    """The emptied store of the variant: ``single`` or ``cluster``."""
    return str(request.getfixturevalue(f"{request.param}_redis_url"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Batched writes span hash slots, so a cluster refuses them by design (the store raises;
    tests/segmenter/test_writes.py checks that): that pairing is not collected at all."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        batched = params.get("writes") == "batched" or params.get("per_slot") is False
        (drop if params.get("redis_url") == "cluster" and batched else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
