"""docs/DEPLOY_WORKER.md: every wrangler and p13n command in its shell blocks is real.

Each ``wrangler <subcommand>`` is asked for ``--help`` from the pinned wrangler (Node 22 from
the pinned package) and each ``p13n <command>`` from the installed CLI; every flag the guide
passes must be in that help. Nothing is sent anywhere (``--help`` only).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.worker import ROOT, WRANGLER, node22

GUIDE = ROOT / "docs" / "DEPLOY_WORKER.md"
WORD = re.compile(r"[a-z]+")


def commands(tool: str) -> list[list[str]]:
    """The invocations of ``tool`` in the guide's ``sh`` blocks, as token lists."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    out = []
    for line in "\n".join(blocks).splitlines():
        code = line.split("#", 1)[0]
        for part in code.split("|"):
            tokens = part.split()
            if tokens and tokens[0] == tool:
                out.append(tokens[1:])
    return out


def split(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(subcommand words, flags) of one invocation."""
    words = []
    for t in tokens:
        if not WORD.fullmatch(t):
            break
        words.append(t)
    return words, [t.split("=")[0] for t in tokens if t.startswith("--")]


def test_every_wrangler_command_and_flag_exists() -> None:
    node, why = node22()
    if node is None:
        pytest.fail(f"{why}: run `make setup`", pytrace=False)
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "true"}
    found = commands("wrangler")
    assert len(found) >= 8, found  # the guide's steps: dry run, KV, secrets, deploy, tail
    wanted: dict[tuple[str, ...], set[str]] = {}
    for tokens in found:  # one --help per subcommand, for all its flags
        words, flags = split(tokens)
        wanted.setdefault(tuple(words), set()).update(flags)
    for words, flags in wanted.items():
        out = subprocess.run(
            [node, str(WRANGLER), *words, "--help"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert text.lstrip().startswith("wrangler " + " ".join(words)), text[:200]
        for flag in sorted(flags):
            assert re.search(rf"{re.escape(flag)}\b", text), f"wrangler {words}: no {flag}"


@pytest.mark.parametrize("tokens", commands("p13n"), ids=" ".join)
def test_every_p13n_command_and_flag_exists(tokens: list[str]) -> None:
    words, flags = split(tokens)
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", *words, "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: p13n {' '.join(words)}")
    for flag in flags:
        assert re.search(rf"{re.escape(flag)}\b", out.stdout), f"p13n {words}: no {flag}"


def test_the_guide_is_where_wrangler_toml_points() -> None:
    assert Path("docs/DEPLOY_WORKER.md").as_posix() in (ROOT / "wrangler.toml").read_text()
