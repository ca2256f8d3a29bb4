"""``p13n keys``: the signing rings of a stack's keys.json rotated in the runbook's three steps
(the running stack's side, restarts and cookies, is tests/docs/test_runbook.py's)."""

from __future__ import annotations

import json

import pytest

from ops.cli import main
from ops.keyring import RINGS, RotationError, ring, rotate, stack_secrets


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bare_secret_is_the_ring_k1_and_the_steps_rotate_it() -> None:
    assert ring("abc") == "k1:abc"
    added = rotate("abc", "add")
    kids = [part.split(":")[0] for part in added.split(",")]
    assert kids == ["k1", "k2"] and added.startswith("k1:abc,")
    promoted = rotate(added, "promote")
    assert promoted.split(",") == list(reversed(added.split(",")))
    assert rotate(promoted, "retire") == promoted.split(",")[0]
    assert rotate(rotate(promoted, "retire"), "add").split(",")[1].startswith("k3:")


@pytest.mark.parametrize(
    ("value", "step", "says"),
    [("k1:a,k2:b", "add", "already holds two keys"), ("k1:a", "promote", "holds one key"),
     ("k1:a", "retire", "nothing to retire")],
)  # fmt: skip
def test_a_step_that_does_not_apply_is_refused(value, step, says) -> None:
    with pytest.raises(RotationError, match=says):
        rotate(value, step)


def test_keys_edits_every_ring_or_none_and_shows_one_without_secrets_leaking(
    capsys, tmp_path
) -> None:
    tokens, keys = stack_secrets(tmp_path)
    code, out, err = run(capsys, "keys", "add", "--stack", str(tmp_path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "add: segment k1 (signs), k2 (accepted); context k1 (signs), k2 (accepted); "
        "console k1 (signs), k2 (accepted)"
    )
    assert "no stack runs there" in out  # nothing to restart
    doc = json.loads((tmp_path / "keys.json").read_text())
    assert doc["tokens"] == tokens and doc["keys"]["segment_hash"] == keys["segment_hash"]
    for name in RINGS.values():
        assert doc["keys"][name].startswith(f"k1:{keys[name]},k2:")
        assert doc["keys"][name] not in out  # the step's report names kids, not secrets
    code, out, _ = run(capsys, "keys", "show", "--ring", "segment", "--stack", str(tmp_path))
    assert code == 0 and out == doc["keys"]["segment_sign"] + "\n"
    # A second add is refused whole: keys.json is left as it was.
    code, _, err = run(capsys, "keys", "add", "--stack", str(tmp_path))
    assert code == 1
    assert err == "p13n keys: the segment ring already holds two keys: promote or retire first\n"
    assert json.loads((tmp_path / "keys.json").read_text()) == doc


def test_keys_show_without_a_stack_says_so(capsys, tmp_path) -> None:
    code, out, err = run(capsys, "keys", "show", "--stack", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == f"p13n keys: no keys.json in {tmp_path}\n"
