"""History files as records: JSON Lines or CSV, plain or gzip, one physical line each.

    {"v": 1, "event_id": "o1", "type": "purchase", ...}      JSON Lines: the collector's
                                                             event documents, as they are
    order_id,customer,sku,ordered_at,price                   CSV: a header, then one event
    o1,cust_48213,SKU-1,2024-03-01T10:00:00Z,9.5             per line, columns mapped to
                                                             event fields (``--map``)

For CSV, ``--map column=field`` renames a column (``--map column=-`` ignores it); every
other column must already be named like an event field, or the import stops before reading
a line. Cells are typed for their field: ``ts`` takes epoch milliseconds or an ISO 8601 time
(UTC when no offset is given), ``price`` a number, ``qty`` and ``v`` integers, ``bot``
true/false; an empty cell leaves the field out. ``v`` defaults to 1, ``type`` to
``purchase``, and a missing ``event_id`` column is derived from the file and the line
(``imp-<digest>-<line>``), so a re-export of the same rows keeps the same ids. A quoted cell
cannot span lines (each record is one line, so each bad line can be named and kept whole).

The source only reads lines (and the CSV header); ``ops.imports.parse`` turns them into
events, in worker processes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from segmenter.event import FIELDS

__all__ = ["Source", "digest_of", "open_source"]

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 20


def digest_of(path: Path) -> str:
    """The file's identity for resuming: a digest of its bytes, as stored."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


class Source:
    """An open history file: iterate it for records; ``position`` is how far (in stored
    bytes, for progress) it has been read."""

    def __init__(
        self, path: Path, digest: str, fmt: str | None, mapping: Mapping[str, str]
    ) -> None:
        self.path = path
        self.digest = digest
        self.size = path.stat().st_size
        self._file: BinaryIO = path.open("rb")
        gz = self._file.read(2) == _GZIP_MAGIC
        self._file.seek(0)
        self._lines: BinaryIO = gzip.GzipFile(fileobj=self._file) if gz else self._file  # type: ignore[assignment]
        name = path.name.removesuffix(".gz")
        self.format = fmt or ("csv" if name.endswith(".csv") else "jsonl")
        if self.format not in ("jsonl", "csv"):
            raise ValueError(f"unknown format {self.format!r}: jsonl or csv")
        self.mapping = dict(mapping)
        self.columns: tuple[str | None, ...] = ()

    @property
    def position(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._lines.close()
        self._file.close()

    def batches(self, size: int) -> Iterator[list[tuple[int, bytes]]]:
        """``(line number, line bytes)`` of the records, ``size`` at a time (blank lines
        and the CSV header are no records)."""
        lines = enumerate(self._physical_lines(), start=1)
        if self.format == "csv":
            for _, raw in lines:
                if raw.strip():
                    self.columns = self._header(raw)
                    break
            else:
                return
        batch: list[tuple[int, bytes]] = []
        for n, raw in lines:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                batch.append((n, line))
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _physical_lines(self) -> Iterator[bytes]:
        """Each line's bytes without its newline, read in large blocks: iterating a gzip
        file line by line cost a third as much as checking the events."""
        rest = b""
        while block := self._lines.read(_BLOCK):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest

    def _header(self, raw: bytes) -> tuple[str | None, ...]:
        names = next(csv.reader([raw.decode("utf-8-sig").rstrip("\r\n")]))
        out: list[str | None] = []
        for name in names:
            field = self.mapping.get(name, name)
            if field == "-":
                out.append(None)
            elif field in FIELDS:
                out.append(field)
            else:
                raise ValueError(
                    f"{self.path.name}: column {name!r} is no event field; map it with "
                    f"--map {name}=FIELD or ignore it with --map {name}=-"
                )
        return tuple(out)


def open_source(path: Path, fmt: str | None, mapping: Mapping[str, str]) -> Source:
    """Open ``path`` for import (its digest read first); ValueError for a bad header/format."""
    return Source(path, digest_of(path), fmt, mapping)
