"""Batch inputs read a chunk at a time: memory stays bounded whatever the file size.

- CSV: pyarrow's streaming reader, every column read as text (so one odd value cannot
  abort the whole file, as typed parsing would, nor be read by other rules than JSON's
  number grammar); the Arrow text columns are then checked a column at a time by the
  same CSV rules as an online ``text/csv`` request
  (:func:`modelyard.contract.check_csv_table`, from :mod:`modelyard.batch.scoring`).
- Parquet: ``ParquetFile.iter_batches``, typed values checked by the JSON rules.
- SQL: the data layer's :func:`modelyard.data.sources.read_sql_chunks` (sorted in SQL,
  streamed), typed values checked by the JSON rules.

Rows are numbered from 0, the first data row (the CSV header is not a row), and chunks
always start at multiples of the job's chunk size, so a resumed job finds its chunks
where the crashed run left them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from modelyard.errors import DataError

__all__ = ["Chunk", "InputFile", "SqlInput", "open_input", "source_of", "sql_source_of"]

_CSV_BLOCK_BYTES = 1 << 20
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


_PLAIN = frozenset({int, float, str, bool, type(None)})


@dataclass(frozen=True)
class Chunk:
    """Consecutive input rows starting at input row ``first_row``.

    ``table`` is Arrow (files) or pandas (SQL, whose columns may mix types, as SQLite's
    do). ``text`` says every value is CSV text (to be parsed by the CSV rules).
    ``progress`` is the share of the input read once this chunk is done.
    """

    first_row: int
    table: pa.Table | pd.DataFrame
    text: bool
    progress: float

    @property
    def rows(self) -> int:
        """How many rows the chunk holds."""
        return len(self.table)

    def values(self, name: str) -> list[Any]:
        """Column ``name`` as plain Python values (JSON's kinds; dates as ISO text)."""
        if isinstance(self.table, pd.DataFrame):
            found: list[Any] = self.table[name].tolist()
        else:
            found = self.table.column(name).to_pylist()
        if set(map(type, found)) <= _PLAIN:
            return found
        return [_plain(value) for value in found]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


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


def sql_source_of(url: str, query: str, *, order_by: list[str] | None = None) -> dict[str, Any]:
    """The job's record of a SQL input: a database URL, a query, the columns to sort by.

    The URL is stored in the job table, so it must not hold a password: give it the way
    the driver finds one itself (``PGPASSWORD``, ``~/.pgpass``, a socket with peer
    authentication). A relative SQLite file is made absolute.

    Raises:
        DataError: the URL is malformed or holds a password, or the query is empty.
    """
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise DataError(f"{url!r} is not a database URL, e.g. sqlite:////data/houses.db") from None
    if parsed.password:
        raise DataError(
            f"{parsed.render_as_string(hide_password=True)}: the URL holds a password, which "
            "the job table would store; drop it from the URL and give it where the workers "
            "run (PGPASSWORD or ~/.pgpass for PostgreSQL)"
        )
    if not query.strip():
        raise DataError("the SQL query is empty; give e.g. --sql 'SELECT * FROM houses'")
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        file = Path(database).expanduser().absolute()
        if not file.is_file():
            raise DataError(f"{url}: no such SQLite database file {file}")
        parsed = parsed.set(database=str(file))
    return {
        "kind": "sql",
        "url": parsed.render_as_string(hide_password=False),
        "query": query,
        "order_by": list(order_by or []),
    }


class SqlInput:
    """A SQL query's rows: its columns, row count, and its chunks in a fixed order."""

    def __init__(self, source: dict[str, Any], chunk_rows: int) -> None:
        from modelyard.data.sources import mask_url, read_sql_chunks

        self.kind = "sql"
        self.where = f"{mask_url(source['url'])} query"
        self.chunk_rows = chunk_rows
        self.columns, total, self._frames = read_sql_chunks(
            source["url"], source["query"], order_by=source["order_by"], chunk_rows=chunk_rows
        )
        self.rows_total: int | None = total
        if total == 0:
            self._frames.close()
            raise DataError(f"{self.where}: the query returned no rows; check its WHERE clause")

    def chunks(self, start_row: int = 0) -> Iterator[Chunk]:
        """The chunks from input row ``start_row`` on (a multiple of ``chunk_rows``)."""
        row = 0
        try:
            for frame in self._frames:
                if row >= start_row:
                    share = min(1.0, (row + len(frame)) / max(self.rows_total or 1, 1))
                    yield Chunk(row, frame.reset_index(drop=True), False, share)
                row += len(frame)
        finally:
            self._frames.close()


class InputFile:
    """One input file: its columns, row count when known, and its chunks."""

    def __init__(self, source: dict[str, Any], chunk_rows: int) -> None:
        self.kind: str = source["kind"]
        self.path = Path(source["path"])
        self.where = str(self.path)
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


def open_input(source: dict[str, Any], chunk_rows: int) -> InputFile | SqlInput:
    """The input a job recorded (see :func:`source_of` and :func:`sql_source_of`).

    Raises:
        DataError: the input is missing, unreadable or empty, or has duplicate columns.
    """
    if source["kind"] == "sql":
        return SqlInput(source, chunk_rows)
    return InputFile(source, chunk_rows)
