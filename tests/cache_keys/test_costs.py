"""The cost math shared by ``p13n status`` and the console: offload and monthly egress."""

from __future__ import annotations

import pytest

from cache_keys.costs import (
    DEFAULT_PRICE_PER_GB,
    MONTH_S,
    TRAFFIC_FIELDS,
    parse_price,
    total_costs,
    traffic_costs,
)

DAY = 86_400


def _edge(requests: int, sent: int, fetches: int, origin: int, uptime: int) -> dict[str, int]:
    return dict(zip(TRAFFIC_FIELDS, (requests, sent, fetches, origin, uptime), strict=True))


def test_offload_by_requests_and_bytes_and_a_priced_month() -> None:
    # one day up: 10^9 bytes sent and 2.5*10^8 from the origin -> 30 GB and 7.5 GB a month
    c = traffic_costs(_edge(1000, 10**9, 100, 25 * 10**7, DAY), 0.1)
    assert c["offload_requests"] == 0.9 and c["offload_bytes"] == 0.75
    assert c["edge_egress_gb_month"] == 30.0 and c["edge_egress_cost_month"] == 3.0
    assert c["origin_egress_gb_month"] == 7.5 and c["origin_egress_cost_month"] == 0.75
    assert c["uptime_s"] == DAY and c["price_per_gb"] == 0.1
    assert (c["requests"], c["origin_fetches"]) == (1000, 100)


def test_no_traffic_has_no_offload_and_more_fetches_than_requests_is_zero() -> None:
    idle = traffic_costs(_edge(0, 0, 0, 0, 0), 0.09)
    assert idle["offload_requests"] is None and idle["offload_bytes"] is None
    assert idle["uptime_s"] == 1 and idle["edge_egress_gb_month"] == 0.0  # no division by 0
    busy = traffic_costs(_edge(2, 100, 5, 400, 60), 0.09)  # background revalidations
    assert busy["offload_requests"] == 0.0 and busy["offload_bytes"] == 0.0


def test_totals_pool_counters_and_add_each_edges_own_month() -> None:
    a = traffic_costs(_edge(100, 10**9, 10, 10**8, MONTH_S), 1.0)  # 1 GB in a month
    b = traffic_costs(_edge(300, 10**9, 30, 3 * 10**8, MONTH_S // 2), 1.0)  # 1 GB in half
    t = total_costs([a, b], 1.0)
    assert t["edges"] == 2 and t["requests"] == 400 and t["origin_fetches"] == 40
    assert t["offload_requests"] == 0.9 and t["offload_bytes"] == 0.8
    assert t["edge_egress_gb_month"] == 3.0 and t["edge_egress_cost_month"] == 3.0
    assert t["origin_egress_gb_month"] == 0.7
    empty = total_costs([], 1.0)
    assert empty["edges"] == 0 and empty["offload_requests"] is None
    assert empty["edge_egress_cost_month"] == 0


def test_the_price_is_parsed_with_its_variable_named() -> None:
    assert parse_price(None) == parse_price("") == DEFAULT_PRICE_PER_GB
    assert parse_price(" 0.02 ") == 0.02 and parse_price("0") == 0
    for bad in ("cheap", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="P13N_EGRESS_PRICE_PER_GB"):
            parse_price(bad)
