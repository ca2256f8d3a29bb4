"""docs/RUNBOOK.md is executable: every ```sh block runs, in order, exactly as written,
against a real stack started by ``p13n up`` (the placeholder convention is the table at the
top of the runbook), and every command the prose names in backticks is one a block runs. The
stack must survive every procedure: after each block it is waited for until ``p13n status``
exits 0, and at the end the segment registry holds only ids hashed with the stack's own key (a
command that fell back to a public key would break shoppers). The key rotation is checked
from a shopper's side after each step (an old cookie verifies until its key is retired; new
cookies are signed with the new key once it is promoted).

The one test double: ``npx wrangler …`` (the Cloudflare platform cannot run here) runs a
stand-in first on PATH that records its arguments and standard input; the test checks them
against ``wrangler.toml`` and the Worker's settings (``edge.settings.EdgeSettings``) and
against the ring the stack holds at that moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest
import redis

from cache_keys import hash_segment
from ops.keyring import stack_keys
from ops.local.redis import RedisServer
from segmenter.schema import Keys
from tests.docs.runbook_checks import Rotation, WranglerDouble
from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
COMMAND_TIMEOUT_S = 120.0
LONG_RUNNING = "# runs until Ctrl-C"
MAY_EXIT_1 = "# exits 1 when"
QUICK = re.compile(r"#\s*quick:\s*(?P<command>.+)$")
# What a command in the prose starts with (in backticks): a block must run it.
COMMAND_WORDS = ("p13n", "python", "curl", "kill", "redis-cli", "make", "npx", "wrangler")
INLINE = re.compile(r"(?<!`)`(?P<code>[^`\n]+)`(?!`)")
# Named in the prose and run, but not by a block: by this test itself (its stack) or by the
# session that runs it (its virtualenv).
RUN_ELSEWHERE = {"p13n up": "_stack below", "p13n up --dir": "_stack below",
                 "make setup": "made the .venv this test runs from"}  # fmt: skip
ENV_PREFIX = re.compile(r"^(?:[A-Z][A-Z0-9_]*=\S*\s+)+")
DWELL_S = 3.0  # how long a long-running command must stay up before it is stopped
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[a-z]*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S
)


@dataclass(frozen=True)
class Block:
    section: str
    commands: tuple[str, ...]


def blocks(text: str) -> list[Block]:
    """Every ```sh block, its commands (comment-only and blank lines dropped) and the
    nearest heading above it."""
    out = []
    for m in FENCE.finditer(text):
        if m["lang"] != "sh":
            continue
        heads = re.findall(r"^#+ (.+)$", text[: m.start()], re.M)
        body = textwrap.dedent(m["body"])
        lines = [ln.strip() for ln in body.splitlines()]
        commands = tuple(ln for ln in lines if ln and not ln.startswith("#"))
        out.append(Block(heads[-1] if heads else "(top)", commands))
    return out


def test_the_runbooks_commands_are_all_in_sh_blocks() -> None:
    """No command hides from the test in an indented block or an unmarked fence."""
    text = RUNBOOK.read_text()
    outside = FENCE.sub("", text)
    indented = [ln for ln in outside.splitlines() if re.match(r"^ {4,}(p13n|python|curl|kill)", ln)]
    assert indented == []
    langs = {m["lang"] for m in FENCE.finditer(text)}
    assert langs <= {"sh", "text"}, langs
    found = blocks(text)
    assert len(found) >= 15 and all(b.commands for b in found)
    everything = "\n".join(c for b in found for c in b.commands)
    for needed in ("kill -TERM <processor pid>", "P13N_CONSUMER=segmenter-2 p13n segmenter run",
                   "p13n segmenter lists", "p13n dlq drop", "p13n rebuild", "p13n keys add",
                   "p13n keys promote", "p13n keys retire", "kill -HUP <p13n up pid>",
                   "npx wrangler secret put SEGMENT_KEYS", "python bench/processor.py",
                   "python bench/origin.py", "python bench/edge_proxy.py"):  # fmt: skip
        assert needed in everything, needed


def _ran(commands: list[str]) -> list[str]:
    """What each command runs: without leading VAR=value assignments and trailing comment."""
    return [ENV_PREFIX.sub("", c.split(" #", 1)[0]).strip() for c in commands]


def inline_commands_not_run(text: str) -> list[str]:
    """Commands the prose names in backticks that no ```sh block runs (word-prefix match:
    `p13n status` is run by ``p13n status --json``)."""
    run = _ran([c for b in blocks(text) for c in b.commands])
    prose = FENCE.sub("", text)
    missing = []
    for m in INLINE.finditer(prose):
        code = m["code"].strip()
        if code.split(" ", 1)[0] not in COMMAND_WORDS or "…" in code or code in RUN_ELSEWHERE:
            continue  # not a command, a pattern of commands (`python bench/…`), or run elsewhere
        if not any(r == code or r.startswith(code + " ") for r in run):
            missing.append(code)
    return missing


def test_every_command_the_prose_names_is_run_by_a_block() -> None:
    """A command only mentioned in a sentence would never be run by the test."""
    assert inline_commands_not_run(RUNBOOK.read_text()) == []
    # The check itself: a command no block runs is found, one a block runs is not.
    sample = "Run `p13n status` then `p13n frobnicate --all`.\n\n```sh\np13n status --json\n```\n"
    assert inline_commands_not_run(sample) == ["p13n frobnicate --all"]


def test_the_benchmarks_have_quick_forms_of_the_same_script() -> None:
    """A ``# quick:`` command runs the benchmark its line names, only smaller."""
    quick = [c for b in blocks(RUNBOOK.read_text()) for c in b.commands if QUICK.search(c)]
    assert len(quick) >= 4
    for command in quick:
        script = re.search(r"bench/\w+\.py", command.split("#", 1)[0])
        assert script and script[0] in QUICK.search(command)["command"], command  # type: ignore[index]


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Runbook:
    """The stack, the environment the operator's shell has, and the values placeholders
    stand for."""

    up: Process
    stack_dir: Path
    work: Path
    env: dict[str, str]
    wrangler: WranglerDouble
    rotation: Rotation
    reloads: int = 0  # how many reloads `p13n up` must have done when the block ends

    def info(self) -> dict:
        doc: dict = json.loads((self.stack_dir / "stack.json").read_text())
        return doc

    def newest_letter(self) -> tuple[str, str]:
        """(id, reason) of the newest dead letter; one is made (a malformed event through
        the edge's collector) when there is none."""
        info = self.info()
        r = redis.Redis.from_url(info["redis_url"])
        try:
            if not r.xlen(Keys().dlq):
                bad = {"v": 1, "event_id": f"rb-{time.time_ns()}", "type": "teleport",
                       "user": "runbook-shopper", "item": "SKU-0001",
                       "ts": int(time.time() * 1000), "session": "s"}  # fmt: skip
                httpx.post(info["edge_url"] + "/v1/events", json=bad, timeout=10)
                wait_until(lambda: r.xlen(Keys().dlq), 10, "no dead letter made")
            eid, fields = r.xrevrange(Keys().dlq, count=1)[0]
        finally:
            r.close()
        return eid.decode(), fields[b"reason"].decode()

    def members(self) -> set[str]:
        """Consumer names of the processors in the group (``segmenter.schema`` members)."""
        r = redis.Redis.from_url(self.info()["redis_url"])
        try:
            return {m.decode().split(":", 1)[0] for m in r.zrange(Keys().members, 0, -1)}
        finally:
            r.close()

    def substitute(self, command: str) -> str:
        if "<p13n up pid>" in command:
            info = self.info()
            command = command.replace("<p13n up pid>", str(info["up_pid"]))
            self.reloads = info["reloads"] + ("-HUP" in command)
        if "<processor pid>" in command:
            command = command.replace("<processor pid>", str(self.info()["pids"]["processor"]))
        if "<ID>" in command or "<REASON>" in command:
            eid, why = self.newest_letter()
            command = command.replace("<ID>", eid).replace("<REASON>", why)
        assert "<" not in command.split("#")[0].replace("<(", ""), f"unknown placeholder: {command}"
        return command

    def healthy(self) -> None:
        def ok() -> bool:
            assert self.up.poll() is None, f"p13n up exited:\n{self.up.tail()}"
            done = subprocess.run([*CLI, "status", "--stack", str(self.stack_dir)],
                                  capture_output=True, timeout=60, check=False)  # fmt: skip
            return done.returncode == 0

        def reloaded() -> bool:
            info = self.info()
            return info["state"] == "running" and info["reloads"] >= self.reloads

        wait_until(reloaded, 180, "a SIGHUP's reload never finished", interval_s=0.5)
        wait_until(ok, 30, "the stack is not healthy again", interval_s=0.5)

    def run(self, block: Block, command: str) -> None:
        shown = self.substitute(command)
        where = f"RUNBOOK.md, {block.section}: {command}"
        print(where, flush=True)  # the progress, shown when the test fails
        if LONG_RUNNING in command:
            self.run_long(shown, where)
            return
        quick = QUICK.search(shown)
        shown = quick["command"] if quick else shown
        step = re.match(r"p13n keys (add|promote|retire)\b", command)
        if step and step[1] == "add":
            self.rotation.before()
        # A benchmark is run from the project's checkout, the rest from a scratch directory.
        cwd = ROOT if ENV_PREFIX.sub("", shown).startswith("python bench/") else self.work
        done = subprocess.run(["bash", "-c", shown], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)  # fmt: skip
        allowed = {0, 1} if MAY_EXIT_1 in command else {0}
        assert done.returncode in allowed, (
            f"{where}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
        if "npx wrangler" in command:
            self.wrangler.check_last(stack_keys(self.stack_dir), where)
        if step:
            self.rotation.after(step[1])

    def run_long(self, shown: str, where: str) -> None:
        """Start it, see it stay up, stop it with SIGTERM (Ctrl-C's sibling): exit 0."""
        # bash runs a lone command in place (exec), so the signal reaches the command itself.
        with Process(["bash", "-c", shown], name="long", env=self.env,
                     cwd=self.work) as proc:  # fmt: skip
            consumer = re.search(r"P13N_CONSUMER=(\S+)", shown)
            if consumer:  # a processor: ready (its signal handlers set) once it is a member

                def member() -> bool:
                    assert proc.poll() is None, f"{where}: exited early\n{proc.tail()}"
                    return consumer[1] in self.members()

                wait_until(member, 60, f"{where}: never joined the group", interval_s=0.2)
            deadline = time.monotonic() + DWELL_S
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"{where}: exited early\n{proc.tail()}"
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            assert code == 0, f"{where}: exit {code}\n{proc.output()}"


def _shell_env(stack_dir: Path, info: dict, new_redis: str, bin_dir: Path) -> dict[str, str]:
    """An operator's shell: the wrangler double's `npx` and the venv's `p13n` on PATH, the
    runbook's variables set, and no secret or trusted-local flag of the test session."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("P13N_SEGMENT_KEY", "P13N_TRUSTED_LOCAL", "P13N_ADMIN_TOKEN")}  # fmt: skip
    env.update({
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{env.get('PATH', '')}",
        "P13N_STACK": str(stack_dir), "REDIS_URL": info["redis_url"],
        "ORIGIN": info["origin_url"], "ARCHIVE": str(stack_dir / "archive"),
        "NEW_REDIS_URL": new_redis,
    })  # fmt: skip
    return env


@contextlib.contextmanager
def _stack(tmp_path: Path) -> Iterator[tuple[Process, Path]]:
    stack_dir = tmp_path / "stack"
    with Process([*CLI, "up", "--dir", str(stack_dir)], name="up") as up:
        try:
            wait_until(lambda: (stack_dir / "stack.json").exists(), 90, "no stack")
            yield up, stack_dir
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(60)


# Some seventy commands, each a fresh interpreter, and four benchmarks, on a shared machine.
@pytest.mark.timeout(1800)
def test_every_runbook_procedure_runs_as_written_against_a_real_stack(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with _stack(tmp_path) as (up, stack_dir), RedisServer() as fresh:
        info = json.loads((stack_dir / "stack.json").read_text())
        wrangler = WranglerDouble(tmp_path / "bin")
        env = _shell_env(stack_dir, info, fresh.url, wrangler.bin_dir)
        book = Runbook(up, stack_dir, work, env, wrangler, Rotation(info["edge_url"], stack_dir))
        book.healthy()
        # Until the edge holds its config and the origin its lists, rails are the default
        # list, and the history below would have no experiment exposures.
        wait_until(lambda: "detail=default" not in httpx.get(
            info["edge_url"] + "/p13n/v1/rail/home?k=3", timeout=10).headers["cache-status"],
            90, "the edge only answers default rails", interval_s=0.5)  # fmt: skip
        # Some history to operate on: traffic (events, an experiment, the archive).
        sim = subprocess.run([*CLI, "simulate", "--stack", str(stack_dir), "--duration", "5",
                              "--rate", "20", "--no-progress"], capture_output=True, text=True,
                             timeout=180, check=False)  # fmt: skip
        assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:]
        ran = 0
        for block in blocks(RUNBOOK.read_text()):
            for command in block.commands:
                book.run(block, command)
                ran += 1
            book.healthy()  # every procedure leaves the stack serving
        assert ran >= 60
        assert wrangler.checked == 6  # two secrets at each of the three steps
        after = book.info()
        assert after["children"]["processor"]["restarts"] >= 1  # the kill -TERM, survived
        assert after["children"]["origin"]["restarts"] == 0
        _registry_uses_the_stacks_key(stack_dir, after["redis_url"])
        _registry_uses_the_stacks_key(stack_dir, fresh.url)  # the rebuilt store's lists too


def _registry_uses_the_stacks_key(stack_dir: Path, url: str) -> None:
    key = json.loads((stack_dir / "keys.json").read_text())["keys"]["segment_hash"].encode()
    r = redis.Redis.from_url(url)
    try:
        registry = r.hgetall(Keys().list_registry)
    finally:
        r.close()
    assert registry, url
    for hseg, raw in registry.items():
        assert hash_segment(msgpack.unpackb(raw)["segment"], key) == hseg.decode(), url
