"""Experiment targeting, schedules, namespaces and variant routing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cache_keys.experiments import assign_variation, in_holdout
from cache_keys.wire import Experiment
from edge.assign import HOLDOUT, PERSONALIZED, assign_all, experiment_table, holdout, routing
from tests.support.edge import HSEG, NOW_MS, SHOPPER, config, experiment

IDS = [f"shopper-{i:04d}-xxxxxxxxxxx"[:22] for i in range(400)]


def test_targets_routes_segments_and_status() -> None:
    cfg = config(
        experiments=[
            experiment("on-home", routes=["home"]),
            experiment("on-pdp", routes=["pdp"]),
            experiment("on-segment", segments=[HSEG]),
            experiment("on-other-segment", segments=["bbbbbbbbbbbbbbbb"]),
            experiment("draft", status="draft"),
            experiment("stopped", status="stopped"),
        ]
    )
    got = assign_all(cfg.experiments, SHOPPER, "home", HSEG, NOW_MS)
    assert [a.experiment for a in got] == ["on-home", "on-segment"]
    assert all(a.variant == 1 and a.variation.name == "boost" for a in got)


def test_schedule_window_is_honoured() -> None:
    cfg = config(
        experiments=[
            experiment("future", start_ms=NOW_MS + 1),
            experiment("ended", stop_ms=NOW_MS),
            experiment("open", start_ms=NOW_MS, stop_ms=NOW_MS + 1),
        ]
    )
    got = assign_all(cfg.experiments, SHOPPER, "home", HSEG, NOW_MS)
    assert [a.experiment for a in got] == ["open"]


def test_no_shopper_id_no_experiments() -> None:
    cfg = config(experiments=[experiment()])
    assert assign_all(cfg.experiments, None, "home", HSEG, NOW_MS) == ()


def test_namespaces_make_a_layer_mutually_exclusive() -> None:
    cfg = config(
        experiments=[
            experiment("left", namespace=["rails", 0, 0.5]),
            experiment("right", namespace=["rails", 0.5, 1]),
        ]
    )
    counts = {0: 0, 1: 0, 2: 0}
    for uid in IDS:
        counts[len(assign_all(cfg.experiments, uid, "home", HSEG, NOW_MS))] += 1
    assert counts[2] == 0
    assert counts[1] == len(IDS)


def test_assignment_is_deterministic_and_split_by_weight() -> None:
    cfg = config(experiments=[experiment(weights=[0.5, 0.5])])
    exp = cfg.experiments[0]
    first = [assign_variation(exp, u) for u in IDS]
    assert first == [assign_variation(exp, u) for u in IDS]
    assert 120 < first.count(1) < 280


def test_routing_folds_variations_first_experiment_wins() -> None:
    cfg = config(
        experiments=[
            experiment(
                "a",
                variations=[
                    {"name": "control"},
                    {"name": "x", "list_variant": "trending", "weights": {"category_boost": 1}},
                ],
            ),
            experiment(
                "b",
                variations=[
                    {"name": "control"},
                    {
                        "name": "y",
                        "list_variant": "other",
                        "origin": "http://alt.test:8080",
                        "origin_path": "/v2/recs",
                        "weights": {"category_boost": 5, "price": -1},
                    },
                ],
            ),
        ]
    )
    rt = routing(assign_all(cfg.experiments, SHOPPER, "home", HSEG, NOW_MS))
    assert rt.list_variant == "trending"
    assert rt.origin == "http://alt.test:8080"
    assert rt.origin_path == "/v2/recs"
    assert dict(rt.weights) == {"category_boost": 1, "price": -1}
    assert routing(()).list_variant == "control"


def _one_by_one(
    experiments: tuple[Experiment, ...], uid: str, route: str, hseg: str, now_ms: int
) -> list[tuple[str, int]]:
    """What the compiled table replaces: each experiment's liveness, targeting and hash."""
    out = []
    for exp in experiments:
        if not exp.is_live(now_ms) or (exp.routes and route not in exp.routes):
            continue
        if exp.segments and hseg not in exp.segments:
            continue
        if (index := assign_variation(exp, uid)) >= 0:
            out.append((exp.key, index))
    return out


_UIDS = st.text(alphabet=st.characters(max_codepoint=0x1F600), max_size=30) | st.from_regex(
    r"[A-Za-z0-9_-]{22}", fullmatch=True
)


@settings(max_examples=300, deadline=None)
@given(
    uid=_UIDS,
    versions=st.lists(st.sampled_from([1, 2]), min_size=1, max_size=5),
    bucket=st.integers(0, 2),
    coverage=st.floats(0.1, 1.0),
    share=st.floats(0.0, 1.0),
    offset=st.integers(-1, 1),
)
def test_the_compiled_table_assigns_as_each_experiment_alone(
    uid: str, versions: list[int], bucket: int, coverage: float, share: float, offset: int
) -> None:
    docs = [
        experiment(
            f"e{i}",
            hash_version=v,
            bucket_version=bucket,
            coverage=coverage,
            weights=[0.3, 0.7],
            namespace=["layer", 0.0, 0.6] if i % 2 else None,
            routes=["home"] if i % 3 == 2 else [],
            start_ms=NOW_MS + offset if i == 1 else None,
            status="stopped" if i == 4 else "running",
        )
        for i, v in enumerate(versions)
    ]
    for doc in docs:
        if doc["namespace"] is None:
            del doc["namespace"]
    exps = config(experiments=docs).experiments
    for route in ("home", "pdp"):
        got = assign_all(exps, uid, route, HSEG, NOW_MS)
        assert [(a.experiment, a.variant) for a in got] == _one_by_one(
            exps, uid, route, HSEG, NOW_MS
        )
    table = experiment_table(exps)
    arm = holdout(share, uid, table.lanes.states(uid) if uid else None)
    alone = None if share <= 0 else (HOLDOUT if in_holdout(uid, share) else PERSONALIZED)
    assert arm == alone
