"""The operations commands against a running system and against a stopped one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis

from edge.request import device_class
from ops.cli import main
from ops.local.redis import free_port
from ops.stack import StackInfo
from ops.status import PROBE_USER_AGENT
from segmenter.schema import Keys, partition_of
from tests.support.ops import api

KEYS = Keys()

COMMANDS = [
    ["status"],
    ["lag"],
    ["dlq", "list"],
    ["dlq", "show", "1-0"],
    ["dlq", "requeue", "--all"],
    ["dlq", "drop", "--reason", "junk"],
    ["purge", "--sku", "AB-1", "--wait", "--timeout", "1"],
    ["experiments", "list"],
    ["experiments", "results", "rail-algo"],
    ["probe"],
    ["backup", "backup.json"],
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_without_a_stack_every_command_says_so_in_one_line(
    capsys, tmp_path, monkeypatch, argv
) -> None:
    for name in ("P13N_ORIGIN_URL", "P13N_ADMIN_TOKEN", "P13N_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, *argv, "--stack", str(tmp_path))
    assert code == 2  # nothing says where the system is: a usage error
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no stack found" in err and "p13n up" in err


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_with_the_parts_stopped_every_command_fails_cleanly(capsys, stopped, argv) -> None:
    code, out, err = run(capsys, *argv, "--stack", str(stopped))
    assert code == 1
    assert "Traceback" not in err
    if argv == ["status"]:
        assert "SOME PARTS ARE DOWN" in out and out.count("DOWN") >= 5
    else:
        assert err.count("\n") == 1
        assert "not reachable" in err or "Redis at" in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["dlq", "show", "not-an-id"], "'not-an-id'"),
        (["dlq", "requeue", "bogus"], "'bogus'"),
        (["dlq", "drop", "1-0 x"], "'1-0 x'"),
        (["dlq", "show", "1-0; DEL x"], "'1-0; DEL x'"),
        (["dlq", "list", "--count", "0"], "--count 0"),
        (["dlq", "list", "--count", "-1"], "--count -1"),
    ],
)
def test_dlq_usage_errors_name_the_argument_not_redis(capsys, stopped, argv, named) -> None:
    code, _, err = run(capsys, *argv, "--stack", str(stopped))
    assert code == 2
    assert err.count("\n") == 1 and named in err and "Redis" not in err


def test_restore_with_everything_stopped_is_one_line(capsys, stopped, tmp_path) -> None:
    (tmp_path / "b.json").write_text("{}")
    code, _, err = run(capsys, "restore", str(tmp_path / "b.json"), "--stack", str(stopped))
    assert code == 1 and err.count("\n") == 1 and "not a p13n backup" in err


def test_status_reports_every_part_up(capsys, stack: StackInfo) -> None:
    code, out, _ = run(capsys, "status", "--stack", stack.directory, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"]
    assert doc["origin"]["readyz"] == "200" and doc["edge"]["up"] and doc["redis"]["up"]
    assert doc["processor"]["partitions_leased"] == 8 and doc["processor"]["owners"]
    code, out, _ = run(capsys, "status", "--stack", stack.directory)
    assert code == 0 and "all parts up" in out and "processor  up" in out


def test_explicit_urls_override_the_stack(capsys, stack: StackInfo, tmp_path) -> None:
    code, _, err = run(
        capsys, "status", "--stack", str(tmp_path), "--origin", stack.origin_url,
        "--edge-admin", stack.edge_admin_url, "--redis-url", stack.redis_url,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "experiments", "list", "--stack", str(tmp_path),
                       "--origin", stack.origin_url)  # fmt: skip
    assert code == 2 and "--token T" in err


def test_lag_lists_every_partition_with_owner(capsys, stack: StackInfo) -> None:
    code, out, _ = run(capsys, "lag", "--stack", stack.directory, "--json")
    doc = json.loads(out)
    assert code == 0 and [p["partition"] for p in doc["partitions"]] == list(range(8))
    assert all(p["owner"] for p in doc["partitions"])
    code, out, _ = run(capsys, "lag", "--stack", stack.directory)
    assert "total behind" in out and "(no lease)" not in out


def test_probe_answers_through_the_edge_and_names_the_tier(capsys, stack: StackInfo) -> None:
    code, out, _ = run(capsys, "probe", "--stack", stack.directory, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == 200
    assert doc["tier"] in {"hit", "stale", "miss", "origin", "default"}
    assert doc["cache_status"].startswith("p13n-edge")


def test_probe_says_it_is_a_bot_so_it_is_never_an_exposure(capsys, httpserver) -> None:
    httpserver.expect_request(
        "/p13n/v1/rail/home", headers={"user-agent": PROBE_USER_AGENT}
    ).respond_with_json({"items": []}, headers={"cache-status": "p13n-edge; detail=hit"})
    code, out, _ = run(capsys, "probe", "--edge", httpserver.url_for("/"), "--json")
    assert code == 0 and json.loads(out)["tier"] == "hit"
    httpserver.check_assertions()
    assert device_class({"user-agent": PROBE_USER_AGENT}) == "bot"  # as the edge sees it


def _dead_letter(r: redis.Redis, raw: bytes, reason: str) -> str:
    fields = {"reason": reason, "field": "ts", "raw": raw, "source": "collector",
              "user": "", "received_ms": str(int(time.time() * 1000))}  # fmt: skip
    return r.xadd(KEYS.dlq, fields).decode()


def test_dlq_list_show_and_requeue(capsys, stack: StackInfo) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    try:
        bad = api(stack, "POST", "/v1/events", json={"v": 1, "event_id": "x", "type": "nope"})
        assert bad.status_code == 400
        now = int(time.time() * 1000)
        good = {"v": 1, "event_id": "requeue-1", "type": "view", "user": "ops-u1",
                "item": "sku-1", "ts": now}  # fmt: skip
        fixed = _dead_letter(r, orjson.dumps(good), "in the future beyond the allowed clock skew")
        code, out, _ = run(capsys, "dlq", "list", "--stack", stack.directory, "--json")
        rows = {e["id"]: e for e in json.loads(out)["entries"]}
        assert code == 0 and rows[fixed]["source"] == "collector"
        broken = next(i for i in rows if i != fixed)

        code, out, _ = run(capsys, "dlq", "show", broken, "--stack", stack.directory)
        assert code == 0 and '"type":"nope"' in out

        code, out, _ = run(capsys, "dlq", "requeue", broken, "--stack", stack.directory)
        assert code == 1 and "REFUSED" in out and r.xrange(KEYS.dlq, broken, broken)

        stream = KEYS.stream(partition_of("ops-u1", 8))
        before = r.xlen(stream)
        code, out, _ = run(capsys, "dlq", "requeue", fixed, "--stack", stack.directory)
        assert code == 0 and "requeued to partition" in out
        assert r.xlen(stream) == before + 1 and not r.xrange(KEYS.dlq, fixed, fixed)
    finally:
        r.delete(KEYS.dlq)
        r.close()


def test_requeue_is_the_admin_apis_audited_and_gives_the_shopper_back(
    capsys, stack: StackInfo
) -> None:
    """A collector dead letter whose body had no user (the collector took it from the cookie
    and kept it beside the bytes): the API requeues it for that shopper and audits it."""
    r = redis.Redis.from_url(stack.redis_url)
    try:
        now = int(time.time() * 1000)
        body = {"v": 1, "event_id": "requeue-2", "type": "view", "item": "sku-1", "ts": now}
        fields = {"reason": "bad ts", "field": "ts", "raw": orjson.dumps(body),
                  "source": "collector", "user": "ops-u2", "received_ms": str(now)}  # fmt: skip
        entry = r.xadd(KEYS.dlq, fields).decode()
        stream = KEYS.stream(partition_of("ops-u2", 8))
        before = r.xlen(stream)
        code, out, err = run(capsys, "dlq", "requeue", entry, "--stack", stack.directory)
        assert code == 0, out + err
        assert r.xlen(stream) == before + 1 and not r.xrange(KEYS.dlq, entry, entry)
        audit = api(stack, "GET", "/v1/admin/audit", params={"target": f"dlq:{entry}"}).json()
        assert [e["action"] for e in audit["entries"]] == ["dlq.requeue"]
    finally:
        r.delete(KEYS.dlq)
        r.close()


def test_dlq_drop_by_reason_then_all_is_audited(capsys, stack: StackInfo) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    try:
        junk = [_dead_letter(r, b"junk", "not JSON") for _ in range(2)]
        other = _dead_letter(r, b"{}", "missing fields")
        code, out, err = run(capsys, "dlq", "drop", "--reason", "not JSON",
                             "--stack", stack.directory)  # fmt: skip
        assert code == 0, err
        assert "dropped 2" in out and r.xlen(KEYS.dlq) == 1 and r.xrange(KEYS.dlq, other, other)
        code, out, _ = run(capsys, "dlq", "drop", "--all", "--stack", stack.directory, "--json")
        assert code == 0 and [row["id"] for row in json.loads(out)["results"]] == [other]
        assert r.xlen(KEYS.dlq) == 0
        for entry in [*junk, other]:
            audit = api(stack, "GET", "/v1/admin/audit", params={"target": f"dlq:{entry}"})
            assert [e["action"] for e in audit.json()["entries"]] == ["dlq.drop"]
    finally:
        r.delete(KEYS.dlq)
        r.close()


def test_dlq_drop_by_id_drops_that_letter_only_audited_and_a_second_drop_is_an_error(
    capsys, stack: StackInfo
) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    try:
        one, two = (_dead_letter(r, b"junk", "not JSON") for _ in range(2))
        code, out, err = run(capsys, "dlq", "drop", one, "--stack", stack.directory)
        assert code == 0, err
        assert out.splitlines() == [f"{one}: dropped", "dropped 1"]
        assert r.xrange(KEYS.dlq, one, one) == [] and r.xrange(KEYS.dlq, two, two)
        audit = api(stack, "GET", "/v1/admin/audit", params={"target": f"dlq:{one}"})
        assert [e["action"] for e in audit.json()["entries"]] == ["dlq.drop"]
        code, _, err = run(capsys, "dlq", "drop", one, "--stack", stack.directory)
        assert code == 1 and err.startswith("p13n") and "404" in err
    finally:
        r.delete(KEYS.dlq)
        r.close()


def test_the_origin_and_token_may_come_from_the_environment(
    capsys, stack: StackInfo, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("P13N_ORIGIN_URL", stack.origin_url)
    code, _, err = run(capsys, "experiments", "list", "--stack", str(tmp_path))
    assert code == 2 and "P13N_ADMIN_TOKEN" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("P13N_ADMIN_TOKEN", stack.tokens["admin"])
    code, _, err = run(capsys, "experiments", "list", "--stack", str(tmp_path))
    assert code == 0, err


def test_lag_is_the_pipeline_apis_behind_under_the_same_name(capsys, stack: StackInfo) -> None:
    code, out, _ = run(capsys, "lag", "--stack", stack.directory, "--json")
    cli = json.loads(out)
    doc = api(stack, "GET", "/v1/admin/pipeline").json()
    assert code == 0 and "behind" in cli and "behind" in doc
    assert all("behind" in p for p in cli["partitions"] + doc["partitions"])


def test_purge_waits_until_the_edge_applied_it(capsys, stack: StackInfo) -> None:
    code, out, err = run(capsys, "purge", "--sku", "AB-1", "--hard", "--wait",
                         "--stack", stack.directory)  # fmt: skip
    assert code == 0, err
    assert "hard purge of sku:ab-1" in out and "applied by 1/1 edges" in out


def test_experiments_list_and_results(capsys, stack: StackInfo) -> None:
    exp = {
        "key": "ops-algo",
        "name": "Ops",
        "variations": [{"name": "control"}, {"name": "boost"}],
        "weights": [0.5, 0.5],
    }
    assert api(stack, "POST", "/v1/admin/experiments", json=exp).status_code == 201
    try:
        code, out, _ = run(capsys, "experiments", "list", "--stack", stack.directory)
        assert code == 0 and "ops-algo" in out and "control (0.5)" in out
        code, out, _ = run(capsys, "experiments", "results", "ops-algo",
                           "--stack", stack.directory)  # fmt: skip
        assert code == 0 and "boost" in out and "sample ratio mismatch" in out
        code, _, err = run(capsys, "experiments", "results", "nope", "--stack", stack.directory)
        assert code == 1 and "404" in err
    finally:
        r = redis.Redis.from_url(stack.redis_url)
        r.hdel(KEYS.experiments, "ops-algo")
        r.close()


def test_stack_json_is_owner_only(stack: StackInfo) -> None:
    assert (Path(stack.directory) / "stack.json").stat().st_mode & 0o777 == 0o600


def test_a_second_up_in_a_running_stacks_directory_is_refused(stack: StackInfo) -> None:
    path = Path(stack.directory) / "stack.json"
    before = path.read_text()
    second = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "--dir", stack.directory],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr and str(os.getpid()) in second.stderr
    assert "Traceback" not in second.stderr
    assert path.read_text() == before  # the running stack's state is untouched
    assert main(["status", "--stack", stack.directory]) == 0


@pytest.mark.parametrize("command", [["lag"], ["status"], ["dlq", "list"]])
def test_a_bad_redis_url_scheme_is_one_line_and_exit_2(capsys, tmp_path, command) -> None:
    argv = [*command, "--stack", str(tmp_path), "--redis-url", "foo://bar"]
    if command == ["status"]:  # the only one of the three that also talks to the origin
        argv += ["--origin", "http://127.0.0.1:9", "--edge-admin", "http://127.0.0.1:9"]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "foo://bar" in err and "scheme" in err


def test_a_malformed_partitions_setting_is_one_line_and_exit_2(
    capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("P13N_PARTITIONS", "abc")
    code, _, err = run(capsys, "lag", "--stack", str(tmp_path))
    assert code == 2 and err.strip() == "p13n lag: P13N_PARTITIONS='abc' is not an integer"


def test_up_with_an_unreachable_redis_url_fails_in_one_line(tmp_path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    up = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": url},
    )
    assert up.returncode == 1
    assert "running" not in up.stdout
    assert up.stderr.startswith(f"p13n up: Redis at REDIS_URL {url} is not")
    assert len(up.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "stack.json").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["purge"], "say what to purge"),
        (["dlq", "requeue"], "name a dead letter ID, or pass --reason R or --all"),
        (["dlq", "drop"], "name a dead letter ID, or pass --reason R or --all"),
        (["dlq", "show"], "needs an ID"),
        (["experiments", "results"], "needs an experiment KEY"),
    ],
)
def test_a_missing_argument_is_a_usage_error(capsys, stack: StackInfo, argv, needle) -> None:
    code, _, err = run(capsys, *argv, "--stack", stack.directory)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
