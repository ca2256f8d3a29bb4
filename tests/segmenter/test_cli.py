"""``p13n replay`` and ``p13n rebuild``: bad arguments are usage errors, before any Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.cli import main

# Nothing listens there: a usage error must be reported without trying Redis.
NOWHERE = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["replay", "--from", "2030-01-01", "--to", "2020-01-01"], "--from"),
        (["replay", "--from", "2024-01-01", "--to", "2024-01-01"], "--from"),
        (["replay", "--from", "2020-01-01", "--to", "2030-01-01", "--archive-dir", "MISSING"],
         "--archive-dir"),
        (["rebuild", "--archive-dir", "MISSING"], "--archive-dir"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_and_name_the_argument(
    capsys, monkeypatch, tmp_path: Path, argv, named
) -> None:
    monkeypatch.setenv("P13N_SEGMENT_KEY", "segment-hash-key-0123456789")
    argv = [str(tmp_path / "nope") if a == "MISSING" else a for a in argv]
    if "--archive-dir" not in argv:
        argv += ["--archive-dir", str(tmp_path)]
    code = main([*argv, "--redis-url", NOWHERE])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and named in err and "Redis" not in err
