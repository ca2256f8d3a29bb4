"""The p13n command lists only commands that work."""

from __future__ import annotations

import subprocess
import sys

from cache_keys import hash_segment
from ops.cli import main


def test_help_lists_working_commands(capsys) -> None:
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for cmd in ("redis-server", "keygen", "hseg"):
        assert cmd in out


def test_hseg_matches_library(capsys) -> None:
    assert main(["hseg", "new|grocery|low", "--key", "k" * 20]) == 0
    assert capsys.readouterr().out.strip() == hash_segment("new|grocery|low", b"k" * 20)


def test_short_key_is_a_clear_error(capsys) -> None:
    assert main(["hseg", "x", "--key", "short"]) == 2
    assert "at least 16 bytes" in capsys.readouterr().err


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "redis-server"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip().endswith(("redis-server", "valkey-server"))
