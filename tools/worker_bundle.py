"""Build the Cloudflare Worker: its own modules, and the Python packages it must ship itself.

    python3 tools/worker_bundle.py build/worker [--wheels DIR]
    python3 tools/worker_bundle.py --requirements      # the pins, for `pip download`

wrangler ships every ``.py`` file under the main module's directory (its Python module rule
is fixed to ``**/*.py`` and user rules cannot name Python modules), so the Worker gets a
directory of its own, rebuilt by wrangler's ``[build]`` command before every deploy or dry
run: the entry, the decision core (``edge/*.py``, which leaves out ``edge/proxy/``: Starlette,
httpx and Redis), and the shared contract.

Python packages go elsewhere: wrangler uploads them from ``python_modules/`` beside
``wrangler.toml`` (what ``pywrangler sync`` fills: a Pyodide site-packages directory plus
``pyvenv.cfg``), and workerd puts that directory on ``sys.path`` and runs its ``.pth`` files.
Here it is filled from the pinned wheels (``[tool.p13n.worker] python-modules`` in
pyproject.toml, downloaded into ``.venv/wheels`` by ``make worker-deps``).

What the runtime provides depends on the compatibility date and flags (``Runtime``): from
2026-04-21 (workerd's ``enable_python_external_sdk``) it no longer provides the ``workers``
SDK, and the Worker must ship ``workers-runtime-sdk``. The build follows every import from
the shipped modules (into ``python_modules/`` too) and fails when one has no provider.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ("worker.py", "edge/*.py", "cache_keys/*.py", "cache_keys/*/*.py")
PYTHON_MODULES = "python_modules"
DEFAULT_WHEELS = ROOT / ".venv" / "wheels"
# workerd's compatibility flag pythonExternalSDK: on by default from this date. Before it (or
# with disable_python_external_sdk) the runtime bundles its own copy of the SDK.
EXTERNAL_SDK_DATE = "2026-04-21"
# Always there in a Python Worker: the FFI modules and workerd's internal helpers, which the
# SDK imports (``_cloudflare`` only behind ``find_spec``).
ALWAYS_PROVIDED = frozenset(
    {"js", "pyodide", "_pyodide_entrypoint_helper", "_cloudflare_compat_flags", "_cloudflare"}
)
# The SDK's top-level modules, which the runtime provides only without the external SDK.
SDK_MODULES = frozenset({"workers", "asgi"})


class BundleError(Exception):
    """The Worker would not start: an import has no provider, or a pinned package is missing."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """The Python Workers runtime a compatibility date and flags select."""

    compatibility_date: str
    flags: frozenset[str]

    @property
    def external_sdk(self) -> bool:
        """True when the Worker must ship the ``workers`` SDK itself."""
        if "disable_python_external_sdk" in self.flags:
            return False
        return (
            "enable_python_external_sdk" in self.flags
            or self.compatibility_date >= EXTERNAL_SDK_DATE
        )

    def provides(self, top: str) -> bool:
        """Whether ``import top`` works without the Worker shipping it."""
        if top in sys.stdlib_module_names or top in ALWAYS_PROVIDED:
            return True
        return top in SDK_MODULES and not self.external_sdk

    def why_not(self, top: str) -> str:
        """Why ``top`` needs a shipper, for the error message."""
        if top in SDK_MODULES:
            return (
                f"the runtime does not provide it for compatibility_date "
                f"{self.compatibility_date} (enable_python_external_sdk from {EXTERNAL_SDK_DATE}):"
                f" pin workers-runtime-sdk in [tool.p13n.worker] python-modules"
            )
        return "it is neither standard library nor provided by the runtime, and nothing ships it"


def runtime_from_config(config: Path) -> Runtime:
    """The runtime ``wrangler.toml`` selects."""
    doc = tomllib.loads(config.read_text(encoding="utf-8"))
    return Runtime(str(doc["compatibility_date"]), frozenset(doc.get("compatibility_flags", ())))


def requirements(pyproject: Path) -> list[str]:
    """The pinned packages the Worker ships (``name==version`` each)."""
    doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    pins = doc.get("tool", {}).get("p13n", {}).get("worker", {}).get("python-modules", [])
    for pin in pins:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", pin):
            raise BundleError(f"python-modules entry {pin!r} is not pinned as name==version")
    return list(pins)


def shipped_files(root: Path = ROOT) -> list[str]:
    """Paths (relative to ``root``) of every project module the Worker ships."""
    found = {p.relative_to(root).as_posix() for g in INCLUDE for p in root.glob(g)}
    return sorted(f for f in found if "__pycache__" not in f)


def _wheel_for(pin: str, wheels: Path) -> Path:
    name, _, version = pin.partition("==")
    stem = re.sub(r"[-_.]+", "_", name).lower()
    found = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise BundleError(f"{pin}: no wheel in {wheels}; run `make worker-deps`")
    if not found[0].name.endswith("-py3-none-any.whl"):
        raise BundleError(f"{found[0].name}: only pure-Python wheels can be shipped this way")
    return found[0]


def fill_python_modules(dest: Path, pins: list[str], wheels: Path) -> list[str]:
    """Recreate ``dest`` as the site-packages of ``pins``, as ``pywrangler sync`` leaves it."""
    archives = [_wheel_for(pin, wheels) for pin in pins]  # all found before anything changes
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    names: list[str] = []
    for archive in archives:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member.startswith("/") or ".." in member.split("/"):
                    raise BundleError(f"{archive.name}: unsafe path {member!r}")
                if not member.endswith((".pyc", "/")):
                    z.extract(member, dest)
                    names.append(member)
    (dest / "pyvenv.cfg").touch()  # pywrangler marks the directory as a virtual environment
    return sorted(names)


def _imports(path: Path, package: str) -> set[str]:
    """Absolute dotted names ``path`` imports; ``from p import n`` also yields ``p.n``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def _module_file(base: Path, dotted: str) -> Path | None:
    path = base.joinpath(*dotted.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _package_of(base: Path, file: Path) -> str:
    parts = list(file.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1])  # a/__init__.py and a/b.py both live in package a


def _pth_imports(vendor: Path) -> set[str]:
    """Modules the vendored ``.pth`` files import at start-up (workerd runs them)."""
    out: set[str] = set()
    for pth in vendor.glob("*.pth"):
        for line in pth.read_text(encoding="utf-8").splitlines():
            if line.startswith(("import ", "import\t")):
                out.update(n.strip() for n in line.split(None, 1)[1].split(";")[0].split(","))
    return out


def check_imports(root: Path, files: list[str], vendor: Path, runtime: Runtime) -> None:
    """Raise ``BundleError`` for any import, reachable from a shipped module, nothing provides."""
    own = {Path(f).parts[0].removesuffix(".py") for f in files}
    queue = [(f, root / f, root) for f in files]
    queue += [(f"{PYTHON_MODULES}/*.pth", None, vendor)]
    seen: set[Path] = set()
    while queue:
        label, file, base = queue.pop()
        wanted = _pth_imports(vendor) if file is None else _imports(file, _package_of(base, file))
        for dotted in sorted(wanted):
            top = dotted.split(".")[0]
            if top in own:
                continue  # every project module ships and is checked itself
            found = _module_file(vendor, dotted)
            if found is not None:
                if found not in seen:
                    seen.add(found)
                    queue.append((found.relative_to(vendor.parent).as_posix(), found, vendor))
            elif _module_file(vendor, top) is None and not runtime.provides(top):
                raise BundleError(f"{label} imports {top!r}: {runtime.why_not(top)}")


def build(
    out: Path, root: Path = ROOT, wheels: Path = DEFAULT_WHEELS, pyproject: Path | None = None
) -> list[str]:
    """Recreate ``out`` and ``root/python_modules``; returns the shipped project modules."""
    files = shipped_files(root)
    runtime = runtime_from_config(root / "wrangler.toml")
    vendor = root / PYTHON_MODULES
    fill_python_modules(vendor, requirements(pyproject or root / "pyproject.toml"), wheels)
    check_imports(root, files, vendor, runtime)
    if out.exists():
        shutil.rmtree(out)
    for f in files:
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / f, out / f)
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="build/worker")
    parser.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS)
    parser.add_argument("--requirements", action="store_true", help="print the pins and exit")
    args = parser.parse_args(argv[1:])
    try:
        if args.requirements:
            print("\n".join(requirements(ROOT / "pyproject.toml")))
            return 0
        out = Path(args.out)
        files = build(out if out.is_absolute() else ROOT / out, wheels=args.wheels)
    except BundleError as exc:
        print(f"worker bundle: {exc}", file=sys.stderr)
        return 1
    print(f"worker bundle: {len(files)} modules in {args.out}, packages in {PYTHON_MODULES}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
