"""The invalidation's pure plan: what it masks, records and pushes, before any I/O."""

from __future__ import annotations

from origin.admin.invalidations import plan
from origin.auth import Caller


def test_a_hard_plan_masks_its_skus_and_a_soft_one_nothing() -> None:
    caller = Caller("admin", "abcd")
    hard = plan(caller, ["sku:ab-1"], ["AB-1"], mode="hard", reason="recall", ms=5)
    soft = plan(caller, ["sku:ab-1"], ["AB-1"], mode="soft", reason="", ms=5)
    assert hard.mask_add == ["AB-1"] and soft.mask_add == []
    assert hard.id.startswith("inv-5-") and hard.id != soft.id
    record = hard.record({"sku:ab-1": (3, 2)})
    assert record["generations"] == {"sku:ab-1": [3, 2]} and record["who"] == caller.who
    msg = hard.message({"sku:ab-1": (3, 2)})
    assert (msg.id, msg.mode, msg.mask_add, msg.issued_at_ms) == (hard.id, "hard", ("AB-1",), 5)
