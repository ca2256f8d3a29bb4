"""Write docs/CONFIGURATION.md from the settings classes: ``make docs``.

    python3 tools/config_doc.py            # rewrite docs/CONFIGURATION.md
    python3 tools/config_doc.py --check    # exit 1 when the document is stale

Every setting is declared once, next to its field: a settings dataclass field carries
``metadata={"env": NAME, "doc": WHAT}`` (plus optional ``secret``, ``also``, ``type``,
``default``), and a module without a settings class (the ``p13n`` tool's own variables) has an
``ENVIRONMENT`` table of the same mappings. The type and default come from the field itself
unless the metadata says how to show them (a key ring is a ``kid:secret`` list, not a class).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "CONFIGURATION.md"
REGENERATE = "make docs"

# (tier, what runs it, module, attribute): a settings dataclass or an ENVIRONMENT table.
SOURCES = (
    ("origin", "`p13n origin` (uvicorn workers)", "origin.settings", "Settings"),
    ("processor", "`p13n segmenter run`, replay, rebuild", "segmenter.settings",
     "ProcessorSettings"),
    ("edge", "the Cloudflare Worker (its vars and secrets) and `p13n edge`", "edge.settings",
     "EdgeSettings"),
    ("edge proxy", "`p13n edge` (the self-hosted edge) only", "edge.proxy.settings",
     "ProxySettings"),
    ("ops", "the `p13n` operator commands", "ops.target", "ENVIRONMENT"),
    ("ops", "the `p13n` operator commands", "ops.local.redis", "ENVIRONMENT"),
)  # fmt: skip
KEYS = frozenset({"env", "doc", "secret", "also", "type", "default"})


class ConfigDocError(Exception):
    """A setting's metadata is incomplete or names an unknown key."""


@dataclass(frozen=True)
class Variable:
    """One documented environment variable (one row of the document)."""

    tier: str
    names: tuple[str, ...]
    type: str
    default: str
    doc: str
    secret: bool


def _row(tier: str, meta: Mapping[str, Any], type_: str, default: str, where: str) -> Variable:
    unknown = set(meta) - KEYS
    if unknown or not meta.get("env") or not meta.get("doc"):
        raise ConfigDocError(f"{where}: metadata needs env and doc, knows {sorted(KEYS)}")
    return Variable(
        tier=tier,
        names=(meta["env"], *meta.get("also", ())),
        type=str(meta.get("type", type_)),
        default=str(meta.get("default", default)),
        doc=str(meta["doc"]),
        secret=bool(meta.get("secret", False)),
    )


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is dataclasses.MISSING:
        # A factory's value is computed at run time: the metadata must say what it is.
        return "required" if f.default_factory is dataclasses.MISSING else ""
    value = f.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, str | bytes | frozenset | tuple) and not value:
        return "empty"
    return f"`{value}`"


def variables(tier: str, source: Any, where: str) -> Iterator[Variable]:
    """The documented variables of one settings dataclass or ``ENVIRONMENT`` table."""
    if dataclasses.is_dataclass(source):
        for f in dataclasses.fields(source):
            if "env" in f.metadata:
                type_ = str(f.type).removesuffix(" | None")
                yield _row(tier, f.metadata, type_, _default(f), f"{where}.{f.name}")
        return
    for i, meta in enumerate(source):
        yield _row(tier, meta, str(meta.get("type", "str")), "none", f"{where}[{i}]")


def collect() -> list[tuple[str, str, list[Variable]]]:
    """(tier, what runs it, its variables) for every source, in document order."""
    out: list[tuple[str, str, list[Variable]]] = []
    for tier, runs, module, attr in SOURCES:
        found = list(variables(tier, getattr(importlib.import_module(module), attr), module))
        if out and out[-1][0] == tier:
            out[-1][2].extend(found)
        else:
            out.append((tier, runs, found))
    for _, _, rows in out:
        if any(not r.default for r in rows):
            bad = [r.names[0] for r in rows if not r.default]
            raise ConfigDocError(f"give a display default in the metadata of {bad}")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole document."""
    lines = [
        "# Configuration reference",
        "",
        f"Generated from the settings classes by `{REGENERATE}` (`python3 tools/config_doc.py`): "
        "do not edit by hand; change a field's metadata in its settings module and regenerate. "
        "`tests/docs/test_configuration.py` fails when this file is stale or when the code "
        "reads a `P13N_*` variable that is not listed here.",
        "",
        "A variable listed under several tiers is read by each of them; give every tier the "
        "same value (the prefix, the partitions and the segment key must agree).",
        "",
        "Secrets (marked **yes**) never belong in a file under version control: put them in "
        "the environment from your secret store (`wrangler secret put` for the Worker). "
        "Make a value with `p13n keygen`.",
        "",
    ]
    for tier, runs, rows in collect():
        lines += [f"## {tier}", "", f"Read by {runs}.", ""]
        lines += ["| variable | type | default | secret | what it does |", "|---|---|---|---|---|"]
        for r in rows:
            names = ", ".join(f"`{n}`" for n in r.names)
            secret = "**yes**" if r.secret else "no"
            cells = (names, f"`{r.type}`", r.default, secret, r.doc)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def documented_names(text: str) -> set[str]:
    """Every variable name the document lists (the first cell of each table row)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split(" | ")[0]))
    return names


def main(argv: list[str]) -> int:
    """Write the document, or with ``--check`` say whether it is current."""
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
