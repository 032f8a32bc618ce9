"""Read a project's rows from a CSV file, a Parquet file or a SQL database, in a fixed order.

Row order is part of reproducibility: the same source must give the same rows in the
same order every time, or a seeded split would pick different rows. Files keep their
own order. A SQL source is always sorted *in SQL*::

    SELECT * FROM (<query>) AS q ORDER BY <id_columns>, <timestamp_column>

The id columns should identify a row: ties come back in whatever order the database
picks. When the spec names neither, rows are sorted by every selected column, left to
right; that needs columns the database can compare (no JSON or BLOB types in
PostgreSQL, for instance), so name ``id_columns`` for such tables.

Time-stamped sources can be read *as of* a point in time: only rows whose
``timestamp_column`` is at or before it are kept (rows with no timestamp are dropped).
The filter runs in pandas after reading, so it behaves the same on every source.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.data._checks import _check_columns, _fresh_index
from modelyard.data._files import _read_file, _resolve_path, sniff_csv
from modelyard.data._sql import _read_sql, mask_url, read_sql_chunks
from modelyard.data._times import _filter_as_of, comparable_times
from modelyard.errors import DataError
from modelyard.spec import DataSpec

__all__ = [
    "comparable_times",
    "describe_source",
    "mask_url",
    "read_source",
    "read_sql_chunks",
    "sniff_csv",
]


def read_source(data: DataSpec, *, base_dir: Path, as_of: object | None = None) -> pd.DataFrame:
    """Read the rows of ``data.source`` in a deterministic order.

    Args:
        data: The data section of the project spec.
        base_dir: The project folder; relative paths (and relative SQLite files) are
            taken from here.
        as_of: Keep only rows whose ``data.timestamp_column`` is at or before this
            point in time; ``None`` uses ``data.as_of``. Date strings are compared as
            datetimes when the column holds dates, numbers (e.g. a year) numerically.

    Returns:
        The rows, with a fresh ``RangeIndex`` and string column names.

    Raises:
        DataError: the file or database is missing or unreadable, the query fails, an
            id or timestamp column is absent, or no rows are left.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "rows.csv").write_text("id,x\\n1,a\\n2,b\\n")
        >>> spec = DataSpec.model_validate({"source": {"path": "rows.csv"}})
        >>> read_source(spec, base_dir=folder).shape
        (2, 2)
    """
    source = data.source
    if source.kind == "sql":
        frame, where = _read_sql(data, base_dir)
    else:
        path = _resolve_path(source.path, base_dir)
        where = str(path)
        frame = _read_file(path, source.kind, dict(source.options))
    frame = _fresh_index(frame)
    _check_columns(frame, data, where)
    if frame.empty:
        raise DataError(f"{where}: no rows; the source is empty, check the file or query")
    cutoff = data.as_of if as_of is None else as_of
    if cutoff is not None:
        frame = _filter_as_of(frame, data.timestamp_column, cutoff, where)
    return frame


def describe_source(data: DataSpec, *, base_dir: Path) -> dict[str, object]:
    """A JSON-ready record of where the rows came from, for a version's lineage.

    Passwords in URLs are masked. ``as_of`` is the spec's; a caller that reads with
    another ``as_of`` records it with ``data.model_copy(update={"as_of": ...})``.

    Example:
        >>> spec = DataSpec.model_validate(
        ...     {"source": {"url": "postgresql://me:secret@db/sales", "table": "orders"}})
        >>> describe_source(spec, base_dir=Path("."))["url"]
        'postgresql://me:***@db/sales'
    """
    source = data.source
    resolved: str | None = None
    if source.path is not None:
        resolved = str(_resolve_path(source.path, base_dir))
    return {
        "kind": source.kind,
        "path": source.path,
        "resolved_path": resolved,
        "url": mask_url(source.url) if source.url is not None else None,
        "query": source.query,
        "table": source.table,
        "options": _jsonable(dict(source.options)),
        "id_columns": list(data.id_columns),
        "timestamp_column": data.timestamp_column,
        "as_of": _jsonable(data.as_of),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
