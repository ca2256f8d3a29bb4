"""docs/LAKE.md shows the documented queries exactly as ``p13n sql --query`` runs them."""

from __future__ import annotations

from pathlib import Path

from ops.sql import QUERIES

DOC = Path(__file__).resolve().parents[2] / "docs" / "LAKE.md"


def test_every_documented_query_is_the_one_that_runs() -> None:
    text = DOC.read_text()
    for name, sql in QUERIES.items():
        assert f"-- {name}\n{sql.strip()}\n```" in text, name
        assert f"$ p13n sql --query {name}" in text, name
