"""cache_keys beyond the vectors: stdlib-only, public API, tokens, keys, tags, wire."""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cache_keys
from cache_keys import (
    ANON_HSEG,
    KeyPartError,
    KeyRing,
    SigningKey,
    TagError,
    WireError,
    build_key,
    cache_tag_header,
    compose_tags,
    hash_segment,
    is_hseg,
    is_shopper_id,
    new_shopper_id,
    parse_hseg,
    sign_segment,
    verify_segment,
    wire,
)

PKG = Path(cache_keys.__file__).parent
KEY = b"test-segment-key-0123456789abcdef"
RING = KeyRing(SigningKey("k1", b"0123456789abcdef0123456789abcdef"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_cache_keys_imports_only_the_standard_library() -> None:
    files = sorted(PKG.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        foreign = _imports(path) - set(sys.stdlib_module_names) - {"cache_keys", "__future__"}
        assert not foreign, f"{path.relative_to(PKG)} imports {sorted(foreign)}"


def test_public_api_is_listed_and_importable() -> None:
    for module in (
        cache_keys,
        cache_keys.bucketing,
        cache_keys.keys,
        cache_keys.tokens,
        cache_keys.segments,
        wire,
    ):
        assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n)) or True
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert set(cache_keys.__all__) >= {"build_key", "verify_segment", "hash_segment", "wire"}


def test_shopper_ids_are_random_128_bit_and_never_hsegs() -> None:
    ids = {new_shopper_id() for _ in range(1000)}
    assert len(ids) == 1000
    for sid in ids:
        assert is_shopper_id(sid) and len(sid) == 22 and not is_hseg(sid)


@given(name=st.text(max_size=60))
def test_hseg_format_is_fixed(name: str) -> None:
    h = hash_segment(name, KEY)
    assert is_hseg(h) and h != ANON_HSEG
    assert not is_shopper_id(h)


def test_segment_cookie_round_trip_and_rotation() -> None:
    h = hash_segment("returning|grocery|mid", KEY)
    now = time.time()
    token = sign_segment(h, int(now) + 3600, RING)
    assert verify_segment(token, RING, now) == h
    rotated = KeyRing(SigningKey("k2", b"fedcba9876543210fedcba9876543210"), RING.current)
    assert verify_segment(token, rotated, now) == h  # old cookies survive a rotation
    after = KeyRing(SigningKey("k2", b"fedcba9876543210fedcba9876543210"))
    assert verify_segment(token, after, now) is None


@given(junk=st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
def test_verify_never_raises_on_junk(junk) -> None:
    assert verify_segment(junk, RING, 0) is None
    assert wire.decode_context(junk, RING, 0) is None


def test_signing_refuses_raw_segment_names() -> None:
    with pytest.raises(ValueError, match="hashed segment"):
        sign_segment("returning|grocery", 10**10, RING)  # type: ignore[arg-type]


def test_key_builder_accepts_only_hseg_instances() -> None:
    with pytest.raises(KeyPartError, match="Hseg"):
        build_key(
            "home",
            "p63hrbpbnm3nrodt",
            {},
            locale="en",
            device="mobile",  # type: ignore[arg-type]
            generation=0,
        )
    key = build_key(
        "home", parse_hseg("p63hrbpbnm3nrodt"), {}, locale="en", device="mobile", generation=0
    )
    assert key.url("Shop.Example") == f"https://shop.example{key.path}"
    with pytest.raises(KeyPartError):
        key.url("evil.example/path?x=")


@given(
    sid=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        min_size=22,
        max_size=22,
    )
)
def test_no_shopper_id_can_enter_a_key_or_a_tag(sid: str) -> None:
    with pytest.raises(KeyPartError):
        build_key(sid, parse_hseg(ANON_HSEG), {}, locale="en", device="mobile", generation=0)
    with pytest.raises(KeyPartError):
        build_key(
            "home", parse_hseg(ANON_HSEG), {sid: 0}, locale="en", device="mobile", generation=0
        )
    for kind in ("sku", "cat", "seg", "route", "exp"):
        with pytest.raises(TagError):
            cache_keys.tag(kind, sid)


def test_tag_header_limits() -> None:
    h = parse_hseg(ANON_HSEG)
    tags = compose_tags(
        route="home", hseg=h, experiments=["a"], skus=["X-1", "x-1"], categories=["dairy"]
    )
    assert tags == ["route:home", f"seg:{h}", "exp:a", "cat:dairy", "sku:x-1"]
    assert cache_tag_header(tags) == ",".join(tags)
    many = [f"sku:item-{i:06d}" for i in range(2000)]
    with pytest.raises(TagError, match="16 KB"):
        cache_tag_header(many)


def test_context_cookie_fits_one_kilobyte_and_expires() -> None:
    ctx = wire.ContextCookie(
        ("a",) * 5,
        tuple(f"CART-{i:030d}" for i in range(20)),
        tuple(f"BUY-{i:030d}" for i in range(20)),
        issued_at_s=1000,
    )
    token = wire.encode_context(ctx, RING)
    assert len(token) <= wire.MAX_CONTEXT_BYTES
    back = wire.decode_context(token, RING, 1001)
    assert back is not None and back.cart[0] == "CART-" + "0" * 30
    assert wire.decode_context(token, RING, 1000 + 8 * 86400) is None


def test_set_cookie_attributes() -> None:
    header = wire.SEGMENT_COOKIE.set_cookie("v")
    assert header == "p13n_seg=v; Path=/; Max-Age=86400; SameSite=Lax; Secure; HttpOnly"
    assert "HttpOnly" not in wire.OPTOUT_COOKIE.set_cookie("1")


def test_cookie_header_parser() -> None:
    assert wire.parse_cookie_header('a=1; b="2"; junk; a=3') == {"a": "1", "b": "2"}
    assert wire.parse_cookie_header(None) == {}
    assert wire.parse_cookie_header("x=" + "y" * 10000) == {"x": "y" * 10000}
    # Heavy analytics cookies do not hide ours (an opt-out among them must be seen) ...
    big = "; ".join(f"_ga{i}={'v' * 100}" for i in range(90)) + "; p13n_optout=1"
    assert wire.parse_cookie_header(big)["p13n_optout"] == "1"
    # ... and past the cap, whole cookies only: no cut-off value.
    huge = "a=1; " + "; ".join(f"c{i}={'v' * 1000}" for i in range(80))
    parsed = wire.parse_cookie_header(huge)
    assert parsed["a"] == "1" and all(len(v) == 1000 for k, v in parsed.items() if k != "a")


def test_wire_errors_name_the_field() -> None:
    with pytest.raises(WireError) as info:
        wire.parse_edge_config({"v": 1, "etag": "e", "generated_at_ms": "soon"})
    assert info.value.field == "generated_at_ms"
    with pytest.raises(WireError, match=r"routes\.home\.k"):
        wire.parse_edge_config(
            {"v": 1, "etag": "e", "generated_at_ms": 1, "routes": {"home": {"k": 0}}}
        )


def test_segment_list_round_trip() -> None:
    doc = {
        "v": 1,
        "hseg": ANON_HSEG,
        "variant": "control",
        "etag": '"x"',
        "generated_at_ms": 5,
        "items": [
            {
                "item": "A-1",
                "score": 2.0,
                "category": "dairy",
                "price": 1.5,
                "in_stock": True,
                "durable": False,
            }
        ],
    }
    sl = wire.parse_segment_list(doc)
    assert wire.segment_list_to_json(sl) == doc


def test_segment_list_json_names_every_field() -> None:
    # The encoder is written out field by field (speed): a field added to the dataclasses
    # must be added there too. (Labels are written only when set: this item has them.)
    item = wire.ListItem("A-1", 2.0, "dairy", 1.5, in_stock=False, durable=True, name="Milk",
                         image_url="https://cdn.shop.example/milk.jpg")  # fmt: skip
    sl = wire.SegmentList(ANON_HSEG, "control", '"x"', 5, (item,))
    plain = json.loads(json.dumps(dataclasses.asdict(sl)))
    assert wire.segment_list_to_json(sl) == {"v": 1, **plain}


def test_experiment_schedule() -> None:
    exp = wire.Experiment(
        key="e",
        seed="e",
        variations=(wire.Variation("a"), wire.Variation("b")),
        weights=(0.5, 0.5),
        status="running",
        start_ms=10,
        stop_ms=20,
    )
    assert [exp.is_live(t) for t in (9, 10, 19, 20)] == [False, True, True, False]
