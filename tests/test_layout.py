"""The layout is the architecture: which top-level package may import which (DESIGN.md, Folders).

Reads every module's imports with ``ast`` (the way ``tools/worker_bundle.py`` checks the
Worker's), including imports inside functions, so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = frozenset({"cache_keys", "edge", "origin", "segmenter", "ops", "tests", "bench", "tools"})
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


def imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (function bodies included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str, *, exclude: str | None = None) -> list[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    if exclude:
        found = [p for p in found if not p.is_relative_to(ROOT / exclude)]
    assert found, f"no modules under {package}/"
    return found


def violations(files: list[Path], allowed: frozenset[str]) -> list[str]:
    out = []
    for f in files:
        bad = imports(f) - allowed
        if bad:
            out.append(f"{f.relative_to(ROOT)} imports {sorted(bad)}")
    return out


def third_party(files: list[Path]) -> frozenset[str]:
    """Whatever these modules import that is neither the project nor the standard library."""
    return frozenset(set().union(*(imports(f) for f in files)) - PROJECT - STDLIB)


def test_cache_keys_is_a_standard_library_leaf() -> None:
    assert violations(modules("cache_keys"), STDLIB | {"cache_keys"}) == []


def test_edge_core_and_worker_import_only_cache_keys_and_the_standard_library() -> None:
    allowed = STDLIB | {"cache_keys", "edge", "workers", "js", "pyodide"}
    files = [*modules("edge", exclude="edge/proxy"), ROOT / "worker.py"]
    assert violations(files, allowed) == []


def test_edge_proxy_imports_no_other_tier() -> None:
    files = modules("edge/proxy")
    allowed = STDLIB | {"cache_keys", "edge"} | third_party(files)
    assert violations(files, allowed) == []


@pytest.mark.parametrize("package", ["origin", "segmenter"])
def test_service_tiers_never_import_ops_tests_or_edge(package: str) -> None:
    files = modules(package)
    allowed = STDLIB | {"cache_keys", "segmenter", package} | third_party(files)
    assert violations(files, allowed - {"ops", "tests", "edge", "bench", "tools"}) == []


def test_segmenter_never_imports_origin() -> None:
    assert all("origin" not in imports(f) for f in modules("segmenter"))


def test_ops_never_imports_tests_or_bench() -> None:
    files = modules("ops")
    assert all(not imports(f) & {"tests", "bench"} for f in files)


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    """A function-local import counts: the rules above could not be dodged with one."""
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from ops.cli import main\n    import edge.proxy\n")
    assert imports(mod) == {"ops", "edge"}
