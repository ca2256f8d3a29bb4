"""The segmenter's store tests run twice: on one Redis and on a real Redis Cluster.

The cluster variant proves the processor's scripts, pipelines and commits never cross a
hash slot (a CROSSSLOT error would fail them) and that its exactly-once accounting holds.
"""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    """The emptied store of the variant: ``single`` or ``cluster``."""
    return str(request.getfixturevalue(f"{request.param}_redis_url"))
