"""Build the Cloudflare Worker's module directory: exactly the modules it ships, nothing else.

    python3 tools/worker_bundle.py build/worker

wrangler ships every ``.py`` file under the main module's directory (its Python module rule
is fixed to ``**/*.py`` and user rules cannot name Python modules), so the Worker gets a
directory of its own, rebuilt by wrangler's ``[build]`` command before every deploy or dry
run. The rules below are the Worker's module rules: the entry, the decision core (``edge/*.py``,
which leaves out ``edge/proxy/``: Starlette, httpx and Redis), and the shared contract. Every
shipped module is checked to import only the standard library, the Workers runtime
(``workers``, ``js``, ``pyodide``) and the shipped packages themselves.
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ("worker.py", "edge/*.py", "cache_keys/*.py", "cache_keys/*/*.py")
RUNTIME_MODULES = frozenset({"workers", "js", "pyodide"})
SHIPPED_PACKAGES = frozenset({"worker", "edge", "cache_keys"})


class BundleError(Exception):
    """A module that would be shipped imports something the Worker does not have."""


def shipped_files(root: Path = ROOT) -> list[str]:
    """Paths (relative to ``root``) of every module the Worker ships."""
    found = {p.relative_to(root).as_posix() for g in INCLUDE for p in root.glob(g)}
    return sorted(f for f in found if "__pycache__" not in f)


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def check_imports(root: Path, files: list[str]) -> None:
    """Raise ``BundleError`` naming any shipped module with a third-party import."""
    allowed = set(sys.stdlib_module_names) | RUNTIME_MODULES | SHIPPED_PACKAGES
    for f in files:
        bad = _imports((root / f).read_text(encoding="utf-8")) - allowed
        if bad:
            raise BundleError(f"{f} imports {sorted(bad)}; the Worker cannot ship that")


def build(out: Path, root: Path = ROOT) -> list[str]:
    """Recreate ``out`` with the shipped modules; returns their paths."""
    files = shipped_files(root)
    check_imports(root, files)
    if out.exists():
        shutil.rmtree(out)
    for f in files:
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / f, out / f)
    return files


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "build/worker")
    try:
        files = build(out if out.is_absolute() else ROOT / out)
    except BundleError as exc:
        print(f"worker bundle: {exc}", file=sys.stderr)
        return 1
    print(f"worker bundle: {len(files)} modules in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
