"""The experiment form: text fields <-> the admin API's experiment document (pure).

    variations "control\\nboost list-b"   -> [{"name": "control"}, {"name": "boost",
                                               "list_variant": "list-b"}]
    variations "a\\nb: due-first"         -> [{"name": "a"}, {"name": "b",
                                               "strategy": "due-first"}]
    weights "0.5, 0.5"                    -> [0.5, 0.5]
    layer "rails", 0, 0.5                 -> {"layer": "rails", "start": 0.0, "end": 0.5}
    segments "returning|dairy|mid, 0f1e…" -> segment_names [...] and segments (hsegs) [...]
    start "2026-01-31T09:00" (UTC)        -> start_ms

Only what the form cannot even parse is checked here; everything else is the API's
validation, whose ``field`` the page puts next to the input it names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cache_keys import is_hseg
from origin.admin.rules import STRATEGY_FIELDS

__all__ = ["API_FIELDS", "FIELDS", "FormError", "changes", "number", "to_doc", "to_form"]

FIELDS = (
    "key", "name", "description", "variations", "weights", "coverage", "layer",
    "layer_start", "layer_end", "segments", "routes", "start", "stop", "auto_stop",
)  # fmt: skip
# API field (problem+json ``field``) -> the form field that shows its error.
API_FIELDS = {
    "key": "key",
    "name": "name",
    "description": "description",
    "variations": "variations",
    "weights": "weights",
    "coverage": "coverage",
    "namespace": "layer",
    "segments": "segments",
    "segment_names": "segments",
    "routes": "routes",
    "start_ms": "start",
    "stop_ms": "stop",
    "auto_stop": "auto_stop",
}
_TIME_FORMAT = "%Y-%m-%dT%H:%M"


class FormError(ValueError):
    """A value the form cannot turn into the API's type; ``field`` is the form field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]


def number(text: str, field: str) -> float:
    """A finite number from a form field: ``nan``, ``inf`` and ``1e309`` are refused here,
    because no JSON document (so no API call) can carry them."""
    try:
        value = float(text)
    except ValueError:
        raise FormError(field, f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise FormError(field, f"{text[:40]!r} is not a finite number")
    return value


def _variations(text: str, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One per line, ``name``, ``name list_variant`` or ``name: strategy``; other settings
    of a kept name are kept, except what a strategy decides (the API writes it out anew)."""
    kept = {v.get("name"): v for v in before}
    out = []
    for line in filter(None, (ln.strip() for ln in text.splitlines())):
        name, colon, strategy = (p.strip() for p in line.partition(":"))
        parts = name.split()
        if len(parts) > 2 or not parts or (colon and (len(parts) > 1 or not strategy)):
            raise FormError(
                "variations", f"{line!r}: write 'name', 'name list_variant' or 'name: strategy'"
            )
        v = {**kept.get(parts[0], {}), "name": parts[0]}
        if colon or v.get("strategy"):  # naming a strategy, or leaving one: its fields go
            for f in ("strategy", *STRATEGY_FIELDS):
                v.pop(f, None)
        if colon:
            v["strategy"] = strategy
        elif len(parts) == 2:
            v["list_variant"] = parts[1]
        out.append(v)
    return out


def _variation_text(v: Mapping[str, Any]) -> str:
    if v.get("strategy"):
        return f"{v['name']}: {v['strategy']}"
    if v.get("list_variant", "control") != "control":
        return f"{v['name']} {v['list_variant']}"
    return str(v["name"])


def _time(text: str, field: str) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise FormError(field, f"{text!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    return int(moment.timestamp() * 1000)


def _namespace(f: Mapping[str, str]) -> dict[str, Any] | None:
    if not f.get("layer"):
        return None
    start = number(f.get("layer_start") or "0", "layer")
    end = number(f.get("layer_end") or "1", "layer")
    return {"layer": f["layer"], "start": start, "end": end}


def _segments(text: str) -> dict[str, list[str]]:
    entries = _list(text)
    return {
        "segments": [e for e in entries if is_hseg(e)],
        "segment_names": [e for e in entries if not is_hseg(e)],
    }


# Form field -> (API fields it sets, how).
_CONVERT: dict[str, Callable[[Mapping[str, str], dict[str, Any]], dict[str, Any]]] = {
    "name": lambda f, b: {"name": f.get("name", "")},
    "description": lambda f, b: {"description": f.get("description", "")},
    "variations": lambda f, b: {
        "variations": _variations(f.get("variations", ""), b.get("variations", []))
    },
    "weights": lambda f, b: (
        {"weights": [number(w, "weights") for w in _list(f["weights"])]} if f.get("weights") else {}
    ),
    "coverage": lambda f, b: (
        {"coverage": number(f["coverage"], "coverage")} if f.get("coverage") else {}
    ),
    "layer": lambda f, b: {"namespace": _namespace(f)},
    "segments": lambda f, b: _segments(f.get("segments", "")),
    "routes": lambda f, b: {"routes": _list(f.get("routes", ""))},
    "start": lambda f, b: {"start_ms": _time(f.get("start", ""), "start")},
    "stop": lambda f, b: {"stop_ms": _time(f.get("stop", ""), "stop")},
    "auto_stop": lambda f, b: {"auto_stop": f.get("auto_stop") == "on"},  # a checkbox
}
# Form fields whose change is compared as one (the layer's three inputs).
_GROUPS = {"layer": ("layer", "layer_start", "layer_end")}


def to_doc(form: Mapping[str, str]) -> dict[str, Any]:
    """The create document from a new experiment's form (``FormError`` if unparseable)."""
    doc: dict[str, Any] = {"key": form.get("key", "")}
    for convert in _CONVERT.values():
        doc.update(convert(form, {}))
    if not doc["auto_stop"]:
        del doc["auto_stop"]  # the API's default
    return {k: v for k, v in doc.items() if v not in (None, [], "") or k == "key"}


def changes(form: Mapping[str, str], before: dict[str, Any]) -> dict[str, Any]:
    """The update document: only the fields the user changed, so nothing else moves."""
    shown = to_form(before)
    doc: dict[str, Any] = {}
    for name, convert in _CONVERT.items():
        group = _GROUPS.get(name, (name,))
        if any(form.get(g, "").strip() != shown.get(g, "") for g in group):
            doc.update(convert(form, before))
    return doc


def _ms_text(ms: Any) -> str:
    if not isinstance(ms, int):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(_TIME_FORMAT)


def _num_text(x: Any) -> str:
    return f"{x:g}" if isinstance(x, int | float) else ""


def to_form(doc: Mapping[str, Any]) -> dict[str, str]:
    """The form's text values for a stored experiment."""
    ns = doc.get("namespace") or ["", None, None]
    variations = [_variation_text(v) for v in doc.get("variations", [])]
    return {
        "key": str(doc.get("key", "")),
        "name": str(doc.get("name", "")),
        "description": str(doc.get("description", "")),
        "variations": "\n".join(variations),
        "weights": ", ".join(_num_text(w) for w in doc.get("weights", [])),
        "coverage": _num_text(doc.get("coverage")),
        "layer": str(ns[0] or ""),
        "layer_start": _num_text(ns[1]),
        "layer_end": _num_text(ns[2]),
        "segments": ", ".join(doc.get("segments", [])),
        "routes": ", ".join(doc.get("routes", [])),
        "start": _ms_text(doc.get("start_ms")),
        "stop": _ms_text(doc.get("stop_ms")),
        "auto_stop": "on" if doc.get("auto_stop") else "",
    }
