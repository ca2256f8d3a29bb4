"""The two ways the store can be deployed, for folders whose tests must hold on both.

A conftest parametrizes its ``redis_url`` fixture over ``BACKENDS``; the ``cluster`` variant
(marked ``cluster``) runs the same assertions against the session's local Redis Cluster.
"""

from __future__ import annotations

import pytest

from ops.local.cluster import LocalCluster

__all__ = ["BACKENDS", "cluster_url_of"]

BACKENDS = ["single", pytest.param("cluster", marks=pytest.mark.cluster)]


def cluster_url_of(cluster: LocalCluster) -> str:
    """The ``redis+cluster://`` URL naming every node of ``cluster``."""
    return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster.startup_nodes)
