"""Runs the contract vectors; standard library and cache_keys only (it also runs in Pyodide).

``cases(vector_dir)`` yields ``(name, check)`` pairs; a check returns None when the case holds
and a message when it does not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cache_keys import bucketing, experiments, keys, segments, tokens, wire
from cache_keys.errors import CacheKeysError, WireError

Check = Callable[[], str | None]


def _load(vector_dir: Path, name: str) -> Any:
    return json.loads((vector_dir / name).read_text(encoding="utf-8"))


def _expect(got: Any, want: Any, what: str) -> str | None:
    return None if got == want else f"{what}: got {got!r}, want {want!r}"


def _close_ranges(got: list[tuple[float, float]], want: list[list[float]]) -> str | None:
    # GrowthBook's own test runner compares these rounded to 8 decimals.
    if len(got) != len(want) or any(
        not math.isclose(a, b, abs_tol=1e-8)
        for g, w in zip(got, want, strict=True)
        for a, b in zip(g, w, strict=True)
    ):
        return f"ranges: got {got!r}, want {want!r}"
    return None


def growthbook_cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    d = _load(vector_dir, "growthbook-bucketing.json")
    for seed, value, version, want in d["hash"]:
        yield (
            f"hash {seed!r} {value!r} v{version}",
            lambda s=seed, v=value, ver=version, w=want: _expect(
                bucketing.hash(s, v, ver), w, "hash"
            ),
        )
    for name, (n, coverage, weights), want in d["getBucketRange"]:
        yield (
            f"getBucketRange {name}",
            lambda n=n, c=coverage, w=weights, want=want: _close_ranges(
                bucketing.get_bucket_ranges(n, c, w), want
            ),
        )
    for name, n, ranges, want in d["chooseVariation"]:
        yield (
            f"chooseVariation {name}",
            lambda n=n, r=ranges, w=want: _expect(
                bucketing.choose_variation(n, [tuple(x) for x in r]), w, "variation"
            ),
        )
    for name, uid, ns, want in d["inNamespace"]:
        yield (
            f"inNamespace {name}",
            lambda u=uid, ns=ns, w=want: _expect(
                bucketing.in_namespace(u, (ns[0], ns[1], ns[2])), w, "in_namespace"
            ),
        )
    for n, want in d["getEqualWeights"]:
        yield (
            f"getEqualWeights {n}",
            lambda n=n, w=want: _close_ranges(
                [(x, 0.0) for x in bucketing.get_equal_weights(n)], [[x, 0.0] for x in w]
            ),
        )


def _keyring(doc: dict[str, Any]) -> tokens.KeyRing:
    cur = doc["current"]
    prev = doc.get("previous")
    return tokens.KeyRing(
        tokens.SigningKey(cur["kid"], cur["secret"].encode()),
        tokens.SigningKey(prev["kid"], prev["secret"].encode()) if prev else None,
    )


def token_cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    d = _load(vector_dir, "tokens.json")
    for case in d["hseg"]:
        yield (
            f"hseg {case['segment']!r}",
            lambda c=case: _expect(
                segments.hash_segment(c["segment"], c["key"].encode()), c["hseg"], "hseg"
            ),
        )
    for case in d["sign"]:
        ring = _keyring(d["keyrings"][case["keyring"]])
        yield (
            f"sign {case['name']}",
            lambda c=case, r=ring: _expect(
                tokens.sign_segment(segments.Hseg(c["hseg"]), c["expires_at_s"], r),
                c["token"],
                "token",
            ),
        )
    for case in d["verify"]:
        ring = _keyring(d["keyrings"][case["keyring"]])
        yield (
            f"verify {case['name']}",
            lambda c=case, r=ring: _expect(
                tokens.verify_segment(c["token"], r, c["now_s"]), c["hseg"], "verify"
            ),
        )


def _key_case(c: dict[str, Any]) -> str | None:
    a = c["input"]
    try:
        got = keys.build_key(
            a["route"],
            segments.parse_hseg(a["hseg"]),
            a["variants"],
            locale=a["locale"],
            device=a["device"],
            generation=a["generation"],
        ).path
    except CacheKeysError as exc:
        return _expect("error", c.get("error", "no error"), f"{type(exc).__name__}: {exc}")
    return _expect(got, c.get("path", "an error"), "path")


def _tag_case(c: dict[str, Any]) -> str | None:
    try:
        got = keys.tag(c["kind"], c["value"])
    except CacheKeysError as exc:
        return _expect("error", c.get("error", "no error"), f"{type(exc).__name__}: {exc}")
    return _expect(got, c.get("tag", "an error"), "tag")


def key_cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    d = _load(vector_dir, "keys.json")
    for case in d["keys"]:
        yield f"key {case['name']}", lambda c=case: _key_case(c)
    for case in d["tags"]:
        yield f"tag {case['name']}", lambda c=case: _tag_case(c)


def _purge_case(c: dict[str, Any]) -> str | None:
    raw = json.dumps(c["message"])
    try:
        msg = wire.decode_purge(raw)
    except WireError as exc:
        return _expect(exc.field, c.get("error", "no error"), f"field of error {exc}")
    if "error" in c:
        return f"expected an error ({c['error']}), got {msg!r}"
    return _expect(json.loads(wire.encode_purge(msg)), c["message"], "round trip")


def _config_case(c: dict[str, Any]) -> str | None:
    try:
        cfg = wire.parse_edge_config(c["document"])
    except WireError as exc:
        return _expect(exc.field, c.get("error", "no error"), f"field of error {exc}")
    if "error" in c:
        return f"expected an error ({c['error']})"
    return _expect(wire.edge_config_to_json(cfg), c["canonical"], "canonical form")


def _document_case(
    c: dict[str, Any], parse: Callable[[Any], Any], to_json: Callable[[Any], Any]
) -> str | None:
    try:
        value = parse(c["document"])
    except WireError as exc:
        return _expect(exc.field, c.get("error", "no error"), f"field of error {exc}")
    if "error" in c:
        return f"expected an error ({c['error']}), got {value!r}"
    return _expect(to_json(value), c["canonical"], "canonical form")


def _label_fit_case(c: dict[str, Any]) -> str | None:
    if "name_in" in c:
        return _expect(wire.fit_name(c["name_in"]), c["name_out"], "fitted name")
    return _expect(wire.fit_image_url(c["url_in"]), c["url_out"], "fitted image url")


def wire_cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    d = _load(vector_dir, "wire.json")
    ring = _keyring(d["keyring"])
    for case in d["context"]:
        ctx = wire.ContextCookie(
            tuple(case["categories"]),
            tuple(case["cart"]),
            tuple(case["durable_purchases"]),
            case["issued_at_s"],
        )
        yield (
            f"context {case['name']}",
            lambda c=case, x=ctx: _expect(wire.encode_context(x, ring), c["token"], "token"),
        )
        yield (
            f"context decode {case['name']}",
            lambda c=case: _expect(
                wire.decode_context(c["token"], ring, c["issued_at_s"] + 10),
                wire.ContextCookie(
                    tuple(c["categories"]),
                    tuple(c["cart"]),
                    tuple(c["durable_purchases"]),
                    c["issued_at_s"],
                ),
                "decoded",
            ),
        )
    for case in d["purge"]:
        yield f"purge {case['name']}", lambda c=case: _purge_case(c)
    for case in d["edge_config"]:
        yield f"edge config {case['name']}", lambda c=case: _config_case(c)
    for case in d["segment_grant"]:
        yield (
            f"segment grant {case['name']}",
            lambda c=case: _document_case(c, wire.parse_segment_grant, wire.segment_grant_to_json),
        )
    for case in d["rail"]:
        yield (
            f"rail {case['name']}",
            lambda c=case: _document_case(c, wire.parse_rail, wire.rail_to_json),
        )
    for case in d["segment_list"]:
        yield (
            f"segment list {case['name']}",
            lambda c=case: _document_case(c, wire.parse_segment_list, wire.segment_list_to_json),
        )
    for case in d["label_fit"]:  # how the origin and the segmenter cut labels to the wire
        yield f"label fit {case['name']}", lambda c=case: _label_fit_case(c)
    for case in d["optout"]:  # one Sec-GPC and opt-out-cookie rule for every tier
        yield (
            f"optout {case['name']}",
            lambda c=case: _expect(
                wire.opted_out(c["gpc"], c["cookie"]), c["opted_out"], "opted_out"
            ),
        )


def _assign_case(c: dict[str, Any]) -> str | None:
    cfg = wire.parse_edge_config(
        {"v": 1, "etag": "x", "generated_at_ms": 0, "experiments": [c["experiment"]]}
    )
    got = [experiments.assign_variation(cfg.experiments[0], u) for u in c["units"]]
    return _expect(got, c["variations"], "variations")


def experiment_cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    d = _load(vector_dir, "experiments.json")
    for case in d["assign"]:
        yield f"assign {case['name']}", lambda c=case: _assign_case(c)
    for case in d["exposure_id"]:
        yield (
            f"exposure id {case['name']}",
            lambda c=case: _expect(
                (
                    experiments.utc_day(c["ts_ms"]),
                    experiments.exposure_event_id(c["unit"], c["experiment"], c["ts_ms"]),
                ),
                (c["day"], c["event_id"]),
                "day and event id",
            ),
        )
    for case in d["holdout"]:
        yield (
            f"holdout {case['name']}",
            lambda c=case: _expect(
                [experiments.in_holdout(u, c["share"]) for u in c["units"]],
                c["held_out"],
                "held out",
            ),
        )


def _merch_case(d: dict[str, Any], c: dict[str, Any]) -> str | None:
    rules = wire.active_rules(
        wire.parse_rules(c["rules"]), route="home", hseg=d["hseg"], now_ms=1000
    )
    rows = [wire.Row(*r) for r in d["rows"]]
    got = wire.apply_rules(rows, rules, k=c.get("k", 6), excluded=frozenset(c.get("excluded", [])))
    return _expect([[r.item, r.score, r.reason] for r in got], c["want"], "ranked")


def _merch_error(c: dict[str, Any]) -> str | None:
    try:
        wire.parse_rules(c["rules"])
    except WireError as exc:
        return _expect(exc.field, c["error"], f"field of error {exc}")
    return f"expected an error ({c['error']})"


def merch_cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    d = _load(vector_dir, "merch_rules.json")
    for case in d["apply"]:
        yield f"merch rule {case['name']}", lambda c=case: _merch_case(d, c)
    for case in d["parse"]:
        yield f"merch rule parse {case['name']}", lambda c=case: _merch_error(c)


def cases(vector_dir: Path) -> Iterator[tuple[str, Check]]:
    """Every vector case of every contract."""
    yield from growthbook_cases(vector_dir)
    yield from token_cases(vector_dir)
    yield from key_cases(vector_dir)
    yield from wire_cases(vector_dir)
    yield from experiment_cases(vector_dir)
    yield from merch_cases(vector_dir)


def run_all(vector_dir: Path) -> tuple[int, list[str]]:
    """Run every case; (number run, failure messages). Used by the Pyodide tests."""
    failures = []
    count = 0
    for name, check in cases(vector_dir):
        count += 1
        try:
            problem = check()
        except Exception as exc:
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{name}: {problem}")
    return count, failures
