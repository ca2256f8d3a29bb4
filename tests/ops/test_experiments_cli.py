"""``p13n experiments`` against a running origin (uvicorn on a real Redis): create from flags
and from JSON/TOML files, start, overlap refusals and warnings, results, rollback, stop,
strategies and the global holdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.cli import main
from tests.support.data import EXPER
from tests.support.servers import OriginProcess, seeded_origin


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    with seeded_origin(tmp_path_factory.mktemp("origin")) as proc:
        yield proc


def run(capsys, origin: OriginProcess, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--origin", origin.url, "--token", EXPER])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_from_flags_start_results_rollback_stop(capsys, origin) -> None:
    create = ["experiments", "create", "cli-due", "--variation", "control", "--variation",
              "due: due-first", "--route", "home", "--weights", "0.5,0.5"]  # fmt: skip
    code, out, err = run(capsys, origin, *create, "--name", "Due first")
    assert code == 0, err
    assert out.startswith("created cli-due: draft, version 1; control (0.5), due: due-first (0.5)")
    code, out, err = run(capsys, origin, "experiments", "start", "cli-due")
    assert code == 0 and "started cli-due: running, version 2" in out, err
    code, out, err = run(capsys, origin, "experiments", "results", "cli-due")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == [
        "variant",
        "exposed",
        "conv",
        "rate",
        "rev/exposed",
        "lift",
        "(95%",
        "CI)",
    ]
    assert lines[2].split()[:3] == ["control", "0", "0"] and lines[3].startswith("due ")
    assert "sample ratio mismatch" in lines[-1]
    code, out, err = run(capsys, origin, "experiments", "rollback", "cli-due", "--version", "1")
    assert code == 0 and "rolled back cli-due: running, version 3" in out, err
    code, _, err = run(capsys, origin, "experiments", "rollback", "cli-due", "--version", "9")
    assert code == 1 and "404" in err and "no earlier version 9" in err
    code, out, err = run(capsys, origin, "experiments", "stop", "cli-due")
    assert code == 0 and "stopped cli-due: stopped" in out, err
    code, out, _ = run(capsys, origin, "experiments", "list")
    assert code == 0 and "cli-due" in out and "stopped" in out


def test_create_from_json_and_toml_files_and_overlap(capsys, origin, tmp_path: Path) -> None:
    doc = {"key": "cli-a", "routes": ["pdp"],
           "variations": [{"name": "a"}, {"name": "b", "strategy": "goes-with"}]}  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "b.toml").write_text(
        'key = "cli-b"\nroutes = ["pdp"]\ncoverage = 0.5\n'
        '[[variations]]\nname = "a"\n[[variations]]\nname = "b"\nstrategy = "budget"\n'
    )
    assert run(capsys, origin, "experiments", "create", "--file", str(tmp_path / "a.json"))[0] == 0
    assert run(capsys, origin, "experiments", "start", "cli-a")[0] == 0
    code, out, err = run(
        capsys, origin, "experiments", "create", "--file", str(tmp_path / "b.toml")
    )
    assert code == 0 and "created cli-b: draft" in out
    assert "warning: starting it would be refused" in err
    code, _, err = run(capsys, origin, "experiments", "start", "cli-b")
    assert code == 1 and "409" in err and "also changes the rail on route pdp" in err
    # flags override the file: an A/A copy on the same route is allowed, with a warning
    file = ["--file", str(tmp_path / "a.json")]
    code, out, err = run(capsys, origin, "experiments", "create", "cli-c", *file,
                         "--variation", "a", "--variation", "b")  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, origin, "experiments", "start", "cli-c")
    assert code == 0 and "warning: overlaps running experiment 'cli-a' on route pdp" in err
    assert run(capsys, origin, "experiments", "stop", "cli-c")[0] == 0
    assert run(capsys, origin, "experiments", "stop", "cli-a")[0] == 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--variation", "a", "--variation", "b: fastest"], "unknown strategy 'fastest'"),
        (["--variation", "a", "--variation", "b c d"], "write NAME"),
        (["--variation", "a", "--variation", "b", "--weights", "x,1"], "is not a number"),
        (["--variation", "a", "--variation", "b", "--layer", "rails"], "LAYER:START:END"),
        (["--file", "/nonexistent.json"], "--file /nonexistent.json"),
        ([], "needs a KEY and variations"),
    ],
)
def test_bad_definitions_say_why_in_one_line(capsys, origin, argv, says) -> None:
    code, _, err = run(capsys, origin, "experiments", "create", "cli-bad", *argv)
    assert code in (1, 2) and says in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["start"], "experiments start needs an experiment KEY"),
        (["rollback", "cli-due"], "experiments rollback needs --version N"),
    ],
)
def test_missing_arguments_are_one_line_usage_errors(capsys, origin, argv, says) -> None:
    code, _, err = run(capsys, origin, "experiments", *argv)
    assert code == 2 and says in err and err.count("\n") == 1, err


def test_strategies_and_holdout(capsys, origin) -> None:
    code, out, _ = run(capsys, origin, "experiments", "strategies")
    assert code == 0 and any(ln.startswith("due-first ") for ln in out.splitlines())
    code, out, _ = run(capsys, origin, "experiments", "holdout")
    assert code == 0 and out.strip() == "global holdout: 0.0% of shoppers (setting)"
    code, out, _ = run(capsys, origin, "experiments", "holdout", "--share", "0.05")
    assert code == 0 and out.strip() == "global holdout: 5.0% of shoppers (admin)"
    code, _, err = run(capsys, origin, "experiments", "holdout", "--share", "2")
    assert code == 1 and "share must be a number from 0 to 1" in err
    assert run(capsys, origin, "experiments", "holdout", "--share", "0")[0] == 0


def test_create_with_auto_stop(capsys, origin) -> None:
    create = ["experiments", "create", "cli-auto", "--variation", "control", "--variation", "b"]
    code, _, err = run(capsys, origin, *create, "--auto-stop")
    assert code == 0, err
    code, _, err = run(capsys, origin, "experiments", "create", "cli-manual", "--variation",
                       "control", "--variation", "b")  # fmt: skip
    assert code == 0, err
    h = {"Authorization": f"Bearer {EXPER}"}
    base = f"{origin.url}/v1/admin/experiments"
    assert httpx.get(f"{base}/cli-auto", headers=h).json()["auto_stop"] is True
    assert httpx.get(f"{base}/cli-manual", headers=h).json()["auto_stop"] is False
