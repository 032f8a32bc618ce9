"""Batch inputs read a chunk at a time: memory stays bounded whatever the file size.

- CSV: pyarrow's streaming reader, every column read as text (so one odd value cannot
  abort the whole file, as typed parsing would); the text is then checked by the same
  CSV rules as an online ``text/csv`` request (:mod:`modelyard.batch.scoring`).
- Parquet: ``ParquetFile.iter_batches``, typed values checked by the JSON rules.

Rows are numbered from 0, the first data row (the CSV header is not a row), and chunks
always start at multiples of the job's chunk size, so a resumed job finds its chunks
where the crashed run left them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from modelyard.errors import DataError

__all__ = ["Chunk", "InputFile", "open_input", "source_of"]

_CSV_BLOCK_BYTES = 1 << 20
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Chunk:
    """Consecutive input rows starting at input row ``first_row``.

    ``text`` says every value is CSV text (to be parsed by the CSV rules).
    ``progress`` is the share of the input read once this chunk is done.
    """

    first_row: int
    table: pa.Table
    text: bool
    progress: float

    @property
    def rows(self) -> int:
        """How many rows the chunk holds."""
        return int(self.table.num_rows)


def source_of(path: str | Path) -> dict[str, Any]:
    """The job's record of an input file: its kind (by suffix) and absolute path.

    Raises:
        DataError: the file does not exist, or its suffix is not .csv, .parquet or .pq.
    """
    file = Path(path).expanduser().absolute()
    kind = _SUFFIXES.get(file.suffix.lower())
    if kind is None:
        raise DataError(
            f"{file}: batch prediction reads .csv, .parquet or .pq files, not "
            f"{file.suffix or 'files without a suffix'}; convert it, or rename it if it is one"
        )
    if not file.is_file():
        raise DataError(f"{file}: no such file; give a path the workers can read")
    return {"kind": kind, "path": str(file)}


class InputFile:
    """One input file: its columns, row count when known, and its chunks."""

    def __init__(self, source: dict[str, Any], chunk_rows: int) -> None:
        self.kind: str = source["kind"]
        self.path = Path(source["path"])
        self.chunk_rows = chunk_rows
        self.rows_total: int | None = None
        try:
            self.columns = self._columns()
        except (OSError, pa.ArrowException, csv.Error, UnicodeDecodeError) as exc:
            raise DataError(
                f"{self.path}: cannot read it as {self.kind.upper()}: {exc}; check the file "
                "(and that the workers can read this path)"
            ) from exc
        if not self.columns:
            raise DataError(
                f"{self.path}: the file is empty; give a header row naming the model's input "
                "columns, then one row per prediction"
            )
        twice = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if twice:
            raise DataError(
                f"{self.path}: columns {', '.join(map(repr, twice))} are named more than once; "
                "give each column one name"
            )

    def _columns(self) -> list[str]:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(self.path) as parquet:
                self.rows_total = int(parquet.metadata.num_rows)
                return [str(name) for name in parquet.schema_arrow.names]
        with open(self.path, newline="", encoding="utf-8-sig") as text:
            return next(csv.reader(text), [])

    def chunks(self, start_row: int = 0) -> Iterator[Chunk]:
        """The chunks from input row ``start_row`` on (a multiple of ``chunk_rows``).

        Raises:
            DataError: the file cannot be read (the message says where).
        """
        try:
            batches = self._parquet() if self.kind == "parquet" else self._csv()
            yield from self._rechunk(batches, start_row)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{self.path}: cannot read it as {self.kind.upper()}: {exc}; fix the file"
            ) from exc

    def _rechunk(
        self, batches: Iterator[tuple[pa.RecordBatch, float]], start_row: int
    ) -> Iterator[Chunk]:
        pending: list[pa.RecordBatch] = []
        held = 0
        row = 0
        progress = 0.0
        for batch, progress in batches:
            pending.append(batch)
            held += batch.num_rows
            while held >= self.chunk_rows:
                table = pa.Table.from_batches(pending)
                chunk, rest = table.slice(0, self.chunk_rows), table.slice(self.chunk_rows)
                if row >= start_row:
                    yield Chunk(row, chunk, self.kind == "csv", self._share(row, progress))
                row += self.chunk_rows
                pending, held = rest.to_batches(), rest.num_rows
        if held and row >= start_row:
            yield Chunk(row, pa.Table.from_batches(pending), self.kind == "csv", 1.0)

    def _share(self, row: int, read: float) -> float:
        if self.rows_total:
            return min(1.0, (row + self.chunk_rows) / self.rows_total)
        return min(read, 1.0)

    def _parquet(self) -> Iterator[tuple[pa.RecordBatch, float]]:
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path) as parquet:
            for batch in parquet.iter_batches(batch_size=self.chunk_rows):
                yield batch, 0.0

    def _csv(self) -> Iterator[tuple[pa.RecordBatch, float]]:
        import pyarrow.csv as pacsv

        size = max(self.path.stat().st_size, 1)
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(self.columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        with pa.OSFile(str(self.path)) as stream:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                convert_options=convert,
            )
            for batch in reader:
                # The reader reads ahead a block or so: progress is approximate.
                yield batch, stream.tell() / size


def open_input(source: dict[str, Any], chunk_rows: int) -> InputFile:
    """The input a job recorded (see :func:`source_of`).

    Raises:
        DataError: the file is missing, unreadable, empty or has duplicate column names.
    """
    return InputFile(source, chunk_rows)
