"""docs/CONFIGURATION.md: generated from the settings classes, current, and complete.

Complete means every ``P13N_*`` name anywhere in the code (the packages, the Worker entry, the
Makefile, wrangler.toml) is a documented variable, and every documented one is still read.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from edge.proxy.settings import ProxySettings
from edge.settings import EdgeSettings, settings_from_env
from origin.settings import Settings
from segmenter.settings import ProcessorSettings
from tools import config_doc

ROOT = Path(__file__).resolve().parents[2]
CODE = ("cache_keys", "edge", "origin", "segmenter", "ops")
VARIABLE_RE = re.compile(r"\bP13N_[A-Z0-9_]*[A-Z0-9]\b")


def code_variables() -> dict[str, str]:
    """Every ``P13N_*`` name in the code -> one file that names it."""
    files = [p for d in CODE for p in (ROOT / d).rglob("*.py")]
    files += [ROOT / "worker.py", ROOT / "Makefile", ROOT / "wrangler.toml"]
    found: dict[str, str] = {}
    for path in files:
        for name in VARIABLE_RE.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_document_is_the_generated_one() -> None:
    current = config_doc.OUTPUT.read_text()
    assert current == config_doc.render(), "docs/CONFIGURATION.md is stale: run `make docs`"


def test_every_variable_the_code_names_is_documented() -> None:
    documented = config_doc.documented_names(config_doc.OUTPUT.read_text())
    missing = {n: f for n, f in code_variables().items() if n not in documented}
    assert missing == {}, f"undocumented (declare them in a settings class's metadata): {missing}"


def test_every_documented_p13n_variable_is_still_read() -> None:
    documented = config_doc.documented_names(config_doc.OUTPUT.read_text())
    ours = {n for n in documented if n.startswith("P13N_")}
    assert len(ours) >= 56
    assert ours - set(code_variables()) == set()


def test_the_scan_finds_a_variable_in_any_code_file(tmp_path: Path) -> None:
    # The completeness check is only as good as the pattern: it must see names in code,
    # in f-strings and in comments alike, and not a bare prefix.
    text = 'os.environ["P13N_NEW_THING"]; f"{P13N_X1}"  # P13N_\n'
    assert VARIABLE_RE.findall(text) == ["P13N_NEW_THING", "P13N_X1"]


def _shown_defaults(cls: Any) -> dict[str, Any]:
    """Field -> default for the fields whose document row shows the field's own default."""
    out = {}
    for f in dataclasses.fields(cls):
        # A required field (no default) is shown as "required": nothing to compare.
        shown = "env" in f.metadata and "default" not in f.metadata
        if shown and f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return out


SIGNING = "k1:" + "s" * 32
BUILT_FROM_AN_EMPTY_ENVIRONMENT = [
    (
        Settings,
        lambda: Settings.from_env(
            {
                "P13N_SEGMENT_KEY": "x" * 32,
                "P13N_SEGMENT_SIGNING": SIGNING,
                "P13N_CONTEXT_SIGNING": SIGNING,
                "P13N_CONSOLE_SIGNING": SIGNING,
            }
        ),
    ),
    (ProcessorSettings, lambda: ProcessorSettings.from_env({"P13N_TRUSTED_LOCAL": "1"})),
    (EdgeSettings, lambda: settings_from_env({"ORIGIN_URL": "http://o", "SEGMENT_KEYS": SIGNING})),
    (ProxySettings, lambda: ProxySettings.from_env({"ORIGIN_URL": "http://o"})),
]


@pytest.mark.parametrize(("cls", "build"), BUILT_FROM_AN_EMPTY_ENVIRONMENT)
def test_the_documented_defaults_are_what_from_env_uses(cls: Any, build: Any) -> None:
    built = build()
    shown = _shown_defaults(cls)
    assert shown
    assert {name: getattr(built, name) for name in shown} == shown


def test_metadata_without_a_doc_is_refused() -> None:
    @dataclasses.dataclass
    class Bad:
        x: int = dataclasses.field(default=1, metadata={"env": "P13N_X"})

    with pytest.raises(config_doc.ConfigDocError, match="env and doc"):
        list(config_doc.variables("t", Bad, "Bad"))
