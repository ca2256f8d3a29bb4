"""The OpenAPI document tells the truth (issue 16, item 7): schemathesis, every check, against a
real origin process (uvicorn, ``p13n origin``) on a real Redis, without a token and with an
admin token. Zero server errors, zero schema mismatches; bounded by examples per operation
and a per-request timeout (about a minute or two on this machine).

``report()`` also prints the totals (operations, cases, failures) for the record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ops.local.redis import RedisServer, free_port
from tests.edge.proxy.conftest import SIGNING, OriginProcess, seed
from tests.origin import data

# Still failing (see the branch's report): integral floats (294.0) that JSON Schema calls
# integers are refused by the validators (ts, stock, ...); a few server errors and
# undocumented statuses in the admin run. Strict: this fails loudly once it passes.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xfail(strict=True, reason="open: integral floats, admin-run 5xx (issue 16.7)"),
]

# Examples per operation and phase: enough to meet every constraint's edges (the coverage
# phase enumerates them), small enough for `make test`.
MAX_EXAMPLES = 15
SEED = 16  # reproducible: the same cases in every run


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    server = RedisServer(data_dir=tmp).start()
    r = redis.Redis.from_url(server.url)
    seed(r)
    r.close()
    env = {
        **os.environ,
        "P13N_REDIS_URL": server.url,
        "P13N_SEGMENT_KEY": data.SEGMENT_KEY.decode(),
        "P13N_SEGMENT_SIGNING": SIGNING,
        "P13N_CONTEXT_SIGNING": SIGNING,
        "P13N_ADMIN_TOKENS": ",".join(f"{role}:{tok}" for tok, role in data.TOKENS.items()),
        "P13N_TRUSTED_LOCAL": "1",
        "P13N_ARCHIVE_DIR": str(tmp / "archive"),
        # schemathesis sends hundreds of events from one client: no 429 in the way
        "P13N_COLLECTOR_RATE_PER_S": "100000",
        "P13N_COLLECTOR_BURST": "100000",
    }
    proc = OriginProcess(server, free_port(), env).start()
    try:
        yield proc
    finally:
        proc.kill()
        server.close()


def run(origin: OriginProcess, report_dir: Path, *headers: str) -> dict[str, Any]:
    """One schemathesis run; its JSON report."""
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{origin.url}/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "10", "--no-color",
        "--generation-database", "none", "--phases", "examples,coverage,fuzzing",
        "--report", "json", "--report-json-path", str(report_dir / "report.json"),
    ]  # fmt: skip
    for h in headers:
        cmd += ["--header", h]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, check=False, cwd=report_dir
    )
    (report_dir / "out.txt").write_text(done.stdout)  # the whole run, for reading failures
    print(done.stdout[-6000:])
    return {"rc": done.returncode, "out": done.stdout, **_totals(report_dir / "report.json")}


def _totals(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text()) if path.exists() else {}
    return {"report": doc}


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_the_openapi_document_matches_the_server(origin, tmp_path, who) -> None:
    headers = [f"Authorization: Bearer {data.ADMIN}"] if who == "admin" else []
    result = run(origin, tmp_path, *headers)
    assert result["rc"] == 0, result["out"][-4000:]
