"""``p13n rules`` against the running stack (real Redis, uvicorn origin, self-hosted edge):
a rule added from the command line is applied in the edge's rail answers, and removed."""

from __future__ import annotations

import httpx

from ops.cli import main
from ops.stack import StackInfo
from tests.support.timing import wait_until


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def first_item(stack: StackInfo) -> dict[str, str]:
    r = httpx.get(stack.edge_url + "/p13n/v1/rail/home", timeout=5)
    assert r.status_code == 200
    items: list[dict[str, str]] = r.json()["items"]
    return items[0] if items else {}


def test_a_rule_added_from_the_cli_is_applied_at_the_edge_then_removed(capsys, stack) -> None:
    d = stack.directory
    code, out, err = run(capsys, "rules", "add", "cli-pin", "--pin", "CLI-PINNED-1",
                         "--position", "1", "--route", "home", "--stack", d)  # fmt: skip
    assert code == 0, err
    assert "added cli-pin; edges follow soft purge inv-" in out
    try:
        pinned = {"item": "CLI-PINNED-1", "reason": "pinned by merchandising rule cli-pin"}
        wait_until(lambda: pinned.items() <= first_item(stack).items(), 20,
                   "the edge never applied the rule")  # fmt: skip
        code, out, _ = run(capsys, "rules", "list", "--stack", d)
        assert code == 0 and "cli-pin: pin CLI-PINNED-1 at 1 on home (live)" in out
        code, _, err = run(capsys, "rules", "add", "cli-pin", "--pin", "X", "--stack", d)
        assert code == 1 and "409" in err
        code, _, err = run(capsys, "rules", "add", "x", "--pin", "A", "--block", "B", "--stack", d)
        assert code == 2 and "exactly one of" in err
    finally:
        code, out, err = run(capsys, "rules", "rm", "cli-pin", "--stack", d)
    assert code == 0, err
    wait_until(lambda: first_item(stack).get("item") != "CLI-PINNED-1", 20,
               "the edge kept the removed rule")  # fmt: skip
