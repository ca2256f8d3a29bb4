"""The one shopper-id policy: anonymous ids, the shop's customer ids, and keys that hide them."""

from __future__ import annotations

import pytest

from origin.settings import Settings, SettingsError
from segmenter.schema import Keys, shopper_tag
from segmenter.shoppers import ShopperIds

ANON = "Q2hv0sZ9kP1fX7aLm3Tq_w"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (ANON, "anonymous"),
        ("cust_48213", "customer"),
        ("12345", "customer"),
        ("5f4dcc3b5aa765d61d8327deb882cf99", "customer"),  # a hex e-mail hash
        ("ann@example.com", None),  # a raw e-mail address is PII: no id
        ("a b", None),
        ("", None),
        ("x" * 65, None),
        ("-leading-dash", None),
        (17, None),
        (None, None),
    ],
)
def test_default_policy_kinds(value: object, kind: str | None) -> None:
    assert ShopperIds().kind(value) == kind


def test_a_configured_pattern_and_length_narrow_what_is_accepted() -> None:
    ids = ShopperIds(r"cust_[0-9]+", 10)
    assert ids.kind("cust_48213") == "customer"
    assert ids.kind("12345") is None
    assert ids.kind("cust_48213999") is None  # 13 characters, over 10
    assert ids.kind(ANON) == "anonymous"  # anonymous ids do not depend on the shop's pattern
    assert ids.problem("12345") == (
        "must be a 22-character anonymous shopper id or a customer id of at most 10 "
        "characters matching cust_[0-9]+"
    )


def test_a_pattern_can_never_widen_the_envelope() -> None:
    ids = ShopperIds(r".*")
    assert ids.kind("a b") is None and ids.kind("a|b") is None and ids.kind("{u:x}") is None


def test_kinds_by_position() -> None:
    ids = ShopperIds()
    assert ids.problem("cust_1", "customer") is None
    assert ids.problem(ANON, "customer") is not None  # an anonymous id cannot sign in as one
    assert ids.problem("cust_1", "anonymous") == "must be a 22-character anonymous shopper id"


@pytest.mark.parametrize(("pattern", "length"), [("(", 64), ("x", 0), ("x", 65)])
def test_bad_policies_are_refused(pattern: str, length: int) -> None:
    with pytest.raises(ValueError):
        ShopperIds(pattern, length)


def test_settings_read_the_policy_from_the_environment() -> None:
    env = {"P13N_TRUSTED_LOCAL": "1", "P13N_CUSTOMER_ID_PATTERN": "c[0-9]+"}
    s = Settings.from_env({**env, "P13N_CUSTOMER_ID_MAX_LEN": "8"})
    assert s.shopper_ids == ShopperIds("c[0-9]+", 8)
    with pytest.raises(SettingsError, match="P13N_CUSTOMER_ID_PATTERN"):
        Settings.from_env({**env, "P13N_CUSTOMER_ID_PATTERN": "("})


def test_customer_ids_never_appear_in_key_names() -> None:
    keys = Keys("p13n")
    names = [*keys.shopper_keys("cust_48213"), keys.link("cust_48213"), keys.anons("cust_48213")]
    assert all("cust_48213" not in n and "{u:c." in n for n in names)
    assert len({n.split("}")[0] for n in names}) == 1  # one hash tag: one cluster slot
    assert keys.shopper(ANON) == f"p13n:{{u:{ANON}}}:f"  # anonymous ids as they are
    assert shopper_tag("cust_48213") != shopper_tag("cust_48214")


def test_a_shoppers_keys_are_its_six_builders_in_order() -> None:
    keys = Keys("shop7")
    for sid in ("cust_48213", "Q2hvY29sYXRlQ2hpcENvb2", "acme:cust.48213"):
        assert keys.shopper_keys(sid) == (
            keys.shopper(sid), keys.recent(sid), keys.cart(sid), keys.bought(sid),
            keys.affinity(sid), keys.exposures(sid),
        )  # fmt: skip
