"""``p13n sql``: SQL over the event lake and the newest online-store snapshot (DuckDB, embedded).

Views (docs/LAKE.md has the columns)::

    events_raw         every archived event, client retries included
    events             each event once (first arrival of an event id on its UTC day)
    popularity, experiment_counts, catalog, shoppers   the newest snapshot (empty if none)

``QUERIES`` are the documented questions: ``p13n sql --query top-sellers``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from ops.snapshot import TABLES, snapshots_dir
from segmenter.lake import COLUMNS, events_glob, has_events

__all__ = ["QUERIES", "SqlError", "connect", "query", "render"]

QUERIES: dict[str, str] = {
    # A merchandiser: what sells in each segment, day by day (segment as of the snapshot).
    "top-sellers": """
WITH sales AS (
  SELECT CAST(to_timestamp(e.ts // 1000) AS DATE) AS day,
         coalesce(s.segment, '(none)') AS segment, e.item,
         sum(e.qty) AS units, round(sum(e.price * e.qty), 2) AS revenue
  FROM events e LEFT JOIN shoppers s USING (user)
  WHERE e.type = 'purchase' AND NOT coalesce(e.bot, false)
  GROUP BY ALL)
SELECT day, segment, item, units, revenue FROM sales
QUALIFY row_number() OVER (PARTITION BY day, segment ORDER BY units DESC, revenue DESC, item) <= 3
ORDER BY day, segment, units DESC, item""",
    # An experimenter: the funnel after each shopper's first exposure, per variant.
    "funnel": """
WITH exposed AS (
  SELECT experiment, user, arg_min(variant, ts) AS variant, min(ts) AS first_ms
  FROM events WHERE type = 'exposure' AND NOT coalesce(bot, false) GROUP BY ALL),
steps AS (
  SELECT x.experiment, x.variant, x.user,
         bool_or(a.type = 'view') AS viewed, bool_or(a.type = 'add_to_cart') AS carted,
         bool_or(a.type = 'purchase') AS bought
  FROM exposed x LEFT JOIN events a ON a.user = x.user AND a.ts >= x.first_ms
  GROUP BY ALL)
SELECT experiment, variant, count(*) AS exposed,
       count(*) FILTER (viewed) AS viewed, count(*) FILTER (carted) AS carted,
       count(*) FILTER (bought) AS purchased,
       round(count(*) FILTER (bought) / count(*), 4) AS conversion
FROM steps GROUP BY ALL ORDER BY experiment, variant""",
    # An analyst: how long until a shopper buys the same item again (consumables).
    "repurchase": """
WITH p AS (
  SELECT item, category, ts, lag(ts) OVER (PARTITION BY user, item ORDER BY ts) AS prev
  FROM events WHERE type = 'purchase')
SELECT item, any_value(category) AS category, count(*) AS repurchases,
       to_milliseconds(CAST(median(ts - prev) AS BIGINT)) AS median_interval,
       to_milliseconds(CAST(avg(ts - prev) AS BIGINT)) AS mean_interval
FROM p WHERE prev IS NOT NULL
GROUP BY item ORDER BY repurchases DESC, item LIMIT 10""",
}


# Partitions from the directory names; columns a later event version added read as NULL.
_READ = "hive_partitioning = true, union_by_name = true"


class SqlError(RuntimeError):
    """The query failed (its DuckDB error, translated here)."""


def _empty(db: duckdb.DuckDBPyConnection, name: str, columns: dict[str, str]) -> None:
    cols = ", ".join(f'"{k}" {t}' for k, t in columns.items())
    db.execute(f"CREATE TABLE {name} ({cols})")


def _literal(path: Path | str) -> str:
    """A SQL string literal (views take no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def connect(lake: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake's views; the files are read in place."""
    db = duckdb.connect()
    if has_events(lake):
        files = _literal(events_glob(lake))
        view = f"CREATE VIEW events_raw AS SELECT * FROM read_parquet({files}, {_READ})"  # noqa: S608
        db.execute(view)
    else:
        _empty(db, "events_raw", COLUMNS)
    db.execute(
        "CREATE VIEW events AS SELECT * FROM events_raw QUALIFY row_number() OVER "
        "(PARTITION BY event_id, ts // 86400000 ORDER BY received_ms, stream_seq) = 1"
    )
    taken = sorted(snapshots_dir(lake).glob("taken=*"))
    for name, columns in TABLES.items():
        path = taken[-1] / f"{name}.parquet" if taken else None
        if path is not None and path.exists():
            view = f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_literal(path)})"  # noqa: S608
            db.execute(view)
        else:
            _empty(db, name, columns)
    return db


def query(lake: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` (a name of ``QUERIES`` or SQL text); the column names and the rows."""
    text = QUERIES.get(sql, sql)
    try:
        with connect(lake) as db:
            cursor = db.execute(text)
            names = [d[0] for d in cursor.description or []]
            return names, cursor.fetchall()
    except duckdb.Error as exc:
        raise SqlError(str(exc).strip()) from exc


def _cell(value: Any) -> str:
    return "NULL" if value is None else str(value)


def render(names: Sequence[str], rows: Sequence[tuple[Any, ...]], fmt: str = "table") -> str:
    """Rows as an aligned text table, CSV or JSON Lines."""
    if fmt == "json":
        return "\n".join(
            orjson.dumps(dict(zip(names, r, strict=True)), default=str).decode() for r in rows
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    cells = [list(names), *([_cell(v) for v in r] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(names))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
