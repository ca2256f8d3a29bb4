"""The ``p13n`` command line as an operator meets it: help with a description and examples
for every command, only the options a command uses, ``--version``, ``P13N_STACK``, one error
style without class names, plurals, and progress lines in a log."""

from __future__ import annotations

import argparse
import json
from importlib import metadata

import pytest

from ops import admin, backup, status
from ops.cli import _build_parser, main
from ops.helptext import plural
from ops.simulate import Simulator
from ops.stack import StackInfo


def subparsers(parser: argparse.ArgumentParser, path: str = "p13n"):
    """(command path, parser) for every subcommand and action, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub
                yield from subparsers(sub, f"{path} {name}")


ALL = list(subparsers(_build_parser()))


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[p for p, _ in ALL])
def test_every_command_and_action_has_a_description(path, parser) -> None:
    assert parser.description, f"{path} --help has no description"
    top = path.count(" ") == 1
    if top:  # actions (dlq list, ...) are described by their command's examples
        assert parser.epilog and parser.epilog.startswith("examples:\n  ")
        assert path in parser.epilog


def test_help_shows_description_and_examples(capsys) -> None:
    out = help_of(capsys, "redis-server")
    assert "Print the path of the redis-server binary" in out
    assert "examples:\n  p13n redis-server" in out


def test_dlq_and_experiments_actions_are_listed_with_help(capsys) -> None:
    out = help_of(capsys, "dlq")
    for action in ("list", "show", "requeue", "drop"):
        assert f"    {action} " in out
    assert "delete for good" in out
    out = help_of(capsys, "experiments")
    assert "    results   one experiment's results per variant" in out


@pytest.mark.parametrize(
    ("argv", "shown", "absent"),
    [
        (["lag"], ["--redis-url", "--prefix"], ["--origin", "--edge", "--token"]),
        (["probe"], ["--edge", "--route"], ["--redis-url", "--token", "--origin"]),
        (["purge"], ["--origin", "--token"], ["--redis-url", "--edge", "--partitions"]),
        (["dlq", "list"], ["--redis-url", "--count"], ["--token", "--all", "--raw"]),
        (["dlq", "requeue"], ["--token", "--all"], ["--redis-url", "--count", "--raw"]),
        (["experiments", "results"], ["--token"], ["--redis-url", "--edge-admin"]),
        (["backup"], ["--origin"], ["--redis-url", "--prefix"]),
    ],
)
def test_a_command_lists_only_the_options_it_uses(capsys, argv, shown, absent) -> None:
    out = help_of(capsys, *argv)
    for flag in shown:
        assert f" {flag}" in out, flag
    for flag in absent:
        assert f" {flag} " not in out and f"[{flag}" not in out, flag


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"p13n {metadata.version('p13n-edge')}"


def test_p13n_stack_names_the_stack_directory(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("P13N_STACK", str(tmp_path / "shop"))
    for name in ("P13N_ORIGIN_URL", "P13N_ADMIN_TOKEN", "P13N_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["experiments", "list"]) == 2
    err = capsys.readouterr().err
    assert f"no stack found at {tmp_path / 'shop' / 'stack.json'}" in err


def _stack_json(directory, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    info = {"directory": str(directory), "redis_url": f"redis://127.0.0.1:{port}/0",
            "origin_url": url, "edge_url": url, "edge_admin_url": url,
            "tokens": {"admin": "a" * 24}}  # fmt: skip
    (directory / "stack.json").write_text(json.dumps(info))
    (directory / "keys.json").write_text(json.dumps({"keys": {"segment_hash": "h" * 32}}))


def test_rebuild_and_replay_use_the_stacks_store_and_archive(capsys, tmp_path) -> None:
    from ops.local.redis import free_port  # noqa: PLC0415

    port = free_port()
    _stack_json(tmp_path, port)
    archive = tmp_path / "archive"
    span = ["--from", "0", "--to", "1"]
    for argv in (["rebuild"], ["replay", *span]):
        assert main([*argv, "--stack", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"p13n {argv[0]}: --archive-dir '{archive}': no such directory")
    archive.mkdir()
    # The stack's archive (empty) is read: nothing to replay, no store touched.
    assert main(["replay", *span, "--stack", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "replayed 0 events"
    # The stack's store is the one rebuilt: down here, one line in the command's words.
    assert main(["rebuild", "--stack", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("p13n rebuild: ") and f"127.0.0.1:{port}" in err
    assert "ConnectionError" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["hseg", "x", "--key", "short"], "p13n hseg: --key must be at least 16 bytes"),
        (["replay", "--from", "yesterday", "--to", "1"], "p13n replay: --from/--to:"),
    ],
)
def test_errors_start_with_the_command_name(capsys, argv, prefix) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(prefix)


def test_counts_read_as_english() -> None:
    assert plural(1, "experiment") == "1 experiment" and plural(None, "item") == "0 items"
    assert backup.counts_text({"experiments": 1, "catalog": 2}) == (
        "1 experiment, 2 catalog entries"
    )
    doc = {"id": "inv-1", "mode": "soft", "tags": ["sku:a"], "pushed_to_subscribers": 1}
    assert "pushed to 1 subscriber;" in admin.purge_text(doc)
    probe = {"ok": False, "status": 503, "latency_ms": 1.0, "tier": "-", "items": None,
             "url": "http://e/p13n/v1/rail/home"}  # fmt: skip
    assert "0 items" in status.probe_text(probe) and "None" not in status.probe_text(probe)


def test_progress_without_a_terminal_prints_a_line_per_tenth(capsys) -> None:
    info = StackInfo("d", "redis://x", "http://o", "http://e", "http://a", {})
    sim = Simulator(info, duration_s=60)
    # Once-a-second reports whose values rarely land on a multiple of 10 %.
    for fraction in (0.0, 0.07, 0.13, 0.26, 0.41, 0.58, 0.61, 0.79, 0.83, 0.97):
        sim._progress(fraction)
    sim._progress(1.0, final=True)
    lines = capsys.readouterr().err.splitlines()
    shown = [line.split("] ")[1].split("%")[0].strip() for line in lines]
    assert shown == ["0", "13", "26", "41", "58", "61", "79", "83", "97", "100"]
