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

import bz2
import codecs
import csv
import datetime as dt
import difflib
import gzip
import io
import logging
import lzma
import numbers
import re
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from modelyard.errors import DataError
from modelyard.spec import DataSpec

__all__ = ["describe_source", "read_source", "read_sql_chunks", "sniff_csv"]

logger = logging.getLogger(__name__)

_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@]*(@)")


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


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return _PASSWORD_RE.sub(r"\1***\2", url)


# -- files ----------------------------------------------------------------------------


def _resolve_path(path: str | None, base_dir: Path) -> Path:
    assert path is not None
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = Path(base_dir) / candidate
    return candidate.absolute()


def _read_file(path: Path, kind: str, options: dict[str, Any]) -> pd.DataFrame:
    if not path.exists():
        raise DataError(
            f"{path}: no such file; check data.source.path "
            "(a relative path is taken from the project folder)"
        )
    if path.is_dir():
        raise DataError(f"{path}: is a folder; data.source.path must name a {kind} file")
    try:
        if kind == "parquet":
            frame: pd.DataFrame = pd.read_parquet(path, engine="pyarrow", **options)
        else:
            frame = pd.read_csv(path, **options)
        if kind == "csv":
            _check_header(path, options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no rows; the file is empty") from None
    except TypeError as exc:
        raise DataError(
            f"{path}: data.source.options are not accepted by the {kind} reader ({exc}); "
            "remove or rename the option"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException) as exc:
        # ParserError and ArrowInvalid are ValueErrors; PermissionError is an OSError.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            "check that it is a Parquet file or set data.source.format"
            if kind == "parquet"
            else "check the delimiter and encoding: set data.source.options (e.g. "
            "sep: ';', encoding: latin-1), or pass `modelyard init --delimiter ';' "
            "--encoding latin-1`; or set data.source.format"
        )
        raise DataError(f"{path}: cannot read as {kind} ({reason}); {hint}") from None
    return frame


def sniff_csv(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> dict[str, str]:
    """The ``data.source.options`` a CSV file needs: its encoding and delimiter.

    Given values are kept (and checked); missing ones are detected. The encoding is
    UTF-8 when the whole file decodes as UTF-8, else the first of the fallbacks
    ``cp1252`` (Windows' Western European, what spreadsheets write) and ``latin-1``
    (which decodes any bytes) that decodes it. The delimiter is found by
    :class:`csv.Sniffer` among ``, ; tab |`` on the first lines. Only values that differ
    from pandas' defaults (UTF-8, comma) are returned. Compressed files (``.gz``,
    ``.bz2``, ``.xz``) are read through their codec.

    Raises:
        DataError: the file cannot be read, or does not decode with the given encoding.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
        >>> _ = path.write_bytes("name;city\\nJosé;Zürich\\n".encode("latin-1"))
        >>> sniff_csv(path)
        {'encoding': 'cp1252', 'sep': ';'}
    """
    if encoding is None:
        encoding = _detect_encoding(path)
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError(
                f"unknown encoding {encoding!r}; use e.g. utf-8, cp1252 or latin-1"
            ) from None
        if not _decodes(path, encoding):
            raise DataError(
                f"{path}: does not decode as {encoding}; try another --encoding, or leave "
                "it out to detect it"
            )
    if delimiter is None:
        delimiter = _detect_delimiter(path, encoding)
    options: dict[str, str] = {}
    if codecs.lookup(encoding).name != "utf-8":
        options["encoding"] = encoding
    if delimiter != ",":
        options["sep"] = delimiter
    return options


_FALLBACK_ENCODINGS = ("cp1252", "latin-1")
#: read_csv options that decide where the header row is and how it splits into names.
_LAYOUT_OPTIONS = frozenset(
    {
        "sep",
        "delimiter",
        "encoding",
        "encoding_errors",
        "compression",
        "quotechar",
        "quoting",
        "escapechar",
        "doublequote",
        "skiprows",
        "skipinitialspace",
        "comment",
        "engine",
        "lineterminator",
        "dialect",
    }
)
_DELIMITERS = ",;\t|"
_SNIFF_CHARS = 64 * 1024
_CHUNK = 1 << 20


def _open_binary(path: Path) -> io.BufferedIOBase:
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            return gzip.open(path, "rb")
        if suffix == ".bz2":
            return bz2.open(path, "rb")
        if suffix == ".xz":
            return lzma.open(path, "rb")
        return path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with _open_binary(path) as stream:
            while chunk := stream.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    return True


def _detect_encoding(path: Path) -> str:
    for encoding in ("utf-8", *_FALLBACK_ENCODINGS):
        if _decodes(path, encoding):
            return encoding
    return "latin-1"  # pragma: no cover - latin-1 decodes every byte


def _detect_delimiter(path: Path, encoding: str) -> str:
    with _open_binary(path) as stream:
        head = stream.read(_SNIFF_CHARS).decode(encoding, errors="ignore")
    lines = head.splitlines()[:50]
    if len(head) >= _SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # Too little to go on (e.g. one column): the most frequent candidate in the
        # header, or a comma.
        header = lines[0] if lines else ""
        counts = {candidate: header.count(candidate) for candidate in _DELIMITERS}
        best = max(counts, key=lambda candidate: counts[candidate])
        return best if counts[best] else ","


# -- SQL ------------------------------------------------------------------------------


def _sql_engine(url: str, what: str) -> tuple[sa.Engine, str, str | None]:
    """An engine on ``url``, its masked form and its password (to mask in messages)."""
    where = mask_url(url)
    secret = _password(url)
    try:
        return sa.create_engine(url), where, secret
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise DataError(
            f"{where}: cannot open this database URL ({_short(exc, secret)}); "
            f"check {what} and that its driver is installed"
        ) from None


def _result_columns(connection: sa.Connection, inner: str) -> list[str]:
    """The column names ``inner`` returns, without reading a row."""
    probe = connection.exec_driver_sql(f"SELECT * FROM ({inner}) AS q WHERE 1 = 0")
    columns = [str(name) for name in probe.keys()]  # noqa: SIM118
    probe.close()
    return columns


def _read_sql(data: DataSpec, base_dir: Path) -> tuple[pd.DataFrame, str]:
    source = data.source
    assert source.url is not None
    url = _sqlite_relative_to(source.url, base_dir)
    engine, where, secret = _sql_engine(url, "data.source.url")
    try:
        # no_parameters: the SQL goes to the driver as written, so a '%' in a LIKE
        # pattern is not taken for a placeholder (psycopg, mysqlclient).
        with engine.connect().execution_options(no_parameters=True) as connection:
            preparer = engine.dialect.identifier_preparer
            inner = _inner_query(source.query, source.table, preparer)
            columns = _result_columns(connection, inner)
            _check_names(columns, data, where)
            order = [*data.id_columns]
            if data.timestamp_column and data.timestamp_column not in order:
                order.append(data.timestamp_column)
            if not order:
                order = columns
            order_sql = ", ".join(preparer.quote(name) for name in order)
            sql = f"SELECT * FROM ({inner}) AS q ORDER BY {order_sql}"
            logger.debug("reading %s: %s", where, sql)
            frame = pd.read_sql_query(sql, connection)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError, ImportError) as exc:
        what = "data.source.query" if source.query is not None else "data.source.table"
        raise DataError(
            f"{where}: SQL failed ({_short(exc, secret)}); check {what} "
            "and that the database is reachable"
        ) from None
    finally:
        engine.dispose()
    return frame, where


def read_sql_chunks(
    url: str, query: str, *, order_by: Sequence[str] = (), chunk_rows: int
) -> tuple[list[str], int, Generator[pd.DataFrame, None, None]]:
    """The rows of ``query`` in a fixed order, ``chunk_rows`` at a time (for batch jobs).

    Rows are sorted in SQL, as :func:`read_source` sorts them: by ``order_by`` when
    given (columns that identify a row), else by every selected column. The database
    streams them (a server-side cursor where the driver has one), so memory holds one
    chunk whatever the result's size.

    Returns:
        The column names, the row count, and the chunks (the connection stays open
        until they are read to the end or the iterator is closed).

    Raises:
        DataError: the URL cannot be opened, the SQL fails, or an order column is not
            in the result; the message masks the password.
    """
    engine, where, secret = _sql_engine(url, "the URL")
    try:
        with engine.connect().execution_options(no_parameters=True) as connection:
            preparer = engine.dialect.identifier_preparer
            inner = _inner_query(query, None, preparer)
            columns = _result_columns(connection, inner)
            unknown = [name for name in order_by if name not in columns]
            if unknown:
                raise DataError(
                    f"{where}: order column(s) {', '.join(map(repr, unknown))} are not in the "
                    f"query's result{_hint(unknown[0], columns)}"
                )
            count = connection.exec_driver_sql(f"SELECT COUNT(*) FROM ({inner}) AS q").scalar()
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        engine.dispose()
        raise DataError(
            f"{where}: SQL failed ({_short(exc, secret)}); check the query "
            "and that the database is reachable"
        ) from None
    except BaseException:
        engine.dispose()
        raise
    order_sql = ", ".join(preparer.quote(name) for name in (order_by or columns))
    sql = f"SELECT * FROM ({inner}) AS q ORDER BY {order_sql}"

    def chunks() -> Generator[pd.DataFrame, None, None]:
        try:
            with engine.connect().execution_options(
                no_parameters=True, stream_results=True
            ) as connection:
                yield from pd.read_sql_query(sql, connection, chunksize=chunk_rows)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise DataError(
                f"{where}: SQL failed while reading ({_short(exc, secret)}); "
                "check that the database is reachable"
            ) from None
        finally:
            engine.dispose()

    return columns, int(count or 0), chunks()


def _inner_query(query: str | None, table: str | None, preparer: Any) -> str:
    if query is not None:
        return query.strip().rstrip(";").strip()
    assert table is not None
    # A dotted name is schema.table (e.g. public.orders), the usual case in databases.
    parts = table.rsplit(".", 1)
    return "SELECT * FROM " + ".".join(preparer.quote(part) for part in parts)


def _sqlite_relative_to(url: str, base_dir: Path) -> str:
    """Resolve a relative SQLite file against the project folder, and refuse a missing one.

    SQLite would otherwise create an empty database file and fail later with an
    unhelpful "no such table".
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = (Path(base_dir) / path).absolute()
    if not path.is_file():
        raise DataError(
            f"{mask_url(url)}: no such SQLite database file {path}; check data.source.url "
            "(a relative file is taken from the project folder)"
        )
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def _password(url: str) -> str | None:
    try:
        return sa.engine.make_url(url).password
    except sa.exc.ArgumentError:
        return None


def _short(exc: BaseException, secret: str | None) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return _PASSWORD_RE.sub(r"\1***\2", text)


# -- checks and as-of -----------------------------------------------------------------


def _fresh_index(frame: pd.DataFrame) -> pd.DataFrame:
    # Named index levels (e.g. restored from Parquet) are data: keep them as columns.
    if not isinstance(frame.index, pd.RangeIndex) and all(
        name is not None for name in frame.index.names
    ):
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    frame.columns = [str(name) for name in frame.columns]
    return frame


def _check_columns(frame: pd.DataFrame, data: DataSpec, where: str) -> None:
    names = [str(name) for name in frame.columns]
    _refuse_duplicates(names, where)
    _check_names(names, data, where)


def _check_header(path: Path, options: dict[str, Any]) -> None:
    """Refuse repeated names in a CSV header, which pandas would silently rename.

    pandas reads a second ``Age`` as ``Age.1``; the renamed column would then be
    registered and required by serving. The raw header row is read again as data.
    """
    if {"header", "names"} & set(options):
        return  # the spec names the columns itself
    layout = {key: value for key, value in options.items() if key in _LAYOUT_OPTIONS}
    raw = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, **layout)
    _refuse_duplicates([str(name) for name in raw.iloc[0].tolist()], str(path))


def _refuse_duplicates(names: list[str], where: str) -> None:
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(position)
    repeated = {name: places for name, places in positions.items() if len(places) > 1}
    if repeated:
        listed = "; ".join(
            f"{name!r} at columns {', '.join(map(str, places))}"
            for name, places in repeated.items()
        )
        raise DataError(
            f"{where}: repeated column names ({listed}; counting from 1); rename them so "
            "each column has its own name"
        )


def _check_names(columns: list[str], data: DataSpec, where: str) -> None:
    wanted = [(name, "data.id_columns") for name in data.id_columns]
    if data.timestamp_column is not None:
        wanted.append((data.timestamp_column, "data.timestamp_column"))
    for name, key in wanted:
        if name not in columns:
            raise DataError(
                f"{where}: {key} names {name!r}, which is not a column{_hint(name, columns)}"
            )


def _hint(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=3)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
    return f"; the columns are: {shown}"


def _filter_as_of(
    frame: pd.DataFrame, column: str | None, as_of: object, where: str
) -> pd.DataFrame:
    if column is None:
        raise DataError(f"{where}: reading as of {as_of!r} needs data.timestamp_column")
    try:
        values, cutoff = comparable_times(frame[column], as_of, what="as_of")
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    keep = (values <= cutoff).to_numpy(dtype=bool, na_value=False)
    if not keep.any():
        earliest = values.min()
        raise DataError(
            f"{where}: no rows on or before as_of {as_of!r} in column {column!r} "
            f"(the earliest is {earliest}); choose a later as_of"
        )
    dropped = int(len(frame) - keep.sum())
    logger.debug("%s: as_of %r keeps %d rows, drops %d", where, as_of, keep.sum(), dropped)
    kept: pd.DataFrame = frame.loc[keep].reset_index(drop=True)
    return kept


def comparable_times(
    values: pd.Series, bound: object = None, *, what: str
) -> tuple[pd.Series, Any]:
    """``values`` and ``bound`` in forms that compare as times (shared with the time split).

    Datetime columns compare with ``bound`` as a timestamp; numeric columns (e.g. a year)
    compare numerically; text columns are parsed as datetimes (or as numbers when
    ``bound`` is a number). ``what`` names ``bound`` in messages (e.g. ``as_of``).
    """
    column = values.name
    if is_bool_dtype(values):
        raise DataError(f"column {column!r} holds booleans, not times; it cannot bound {what}")
    bound_is_number = isinstance(bound, numbers.Real) and not isinstance(bound, bool | np.bool_)
    if is_numeric_dtype(values) or (bound_is_number and not is_datetime64_any_dtype(values)):
        as_numbers = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & as_numbers.isna()
        if bad.any():
            if _try_times(values) is not None:
                raise _not_a_date(what, bound, column)
            raise DataError(
                f"column {column!r} holds values that are not numbers (e.g. "
                f"{values[bad].iloc[0]!r}), so {what} {bound!r} cannot be compared with it"
            )
        if bound is None or bound_is_number:
            return as_numbers, bound
        try:
            return as_numbers, float(str(bound))
        except ValueError:
            raise DataError(
                f"{what} {bound!r} is not a number, but column {column!r} holds numbers "
                f"(e.g. {as_numbers.dropna().iloc[0]!r}); give {what} as a number"
            ) from None
    times = values if is_datetime64_any_dtype(values) else _parse_times(values, what)
    if bound is None:
        return times, None
    if bound_is_number or not isinstance(bound, str | dt.date):
        raise _not_a_date(what, bound, column)
    try:
        cutoff = pd.Timestamp(bound)
    except ValueError:
        raise DataError(f"{what} {bound!r} is not a date; write it like '2024-01-31'") from None
    zone = getattr(times.dtype, "tz", None)
    if zone is not None and cutoff.tzinfo is None:
        cutoff = cutoff.tz_localize(zone)
    elif zone is None and cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert(None)
    return times, cutoff


def _not_a_date(what: str, bound: object, column: object) -> DataError:
    return DataError(
        f"{what} {bound!r} is not a date, but column {column!r} holds dates; "
        f"give {what} as a date like '2024-01-31'"
    )


def _try_times(values: pd.Series) -> pd.Series | None:
    """``values`` parsed as datetimes, or ``None`` if some value is not a date."""
    attempts: list[dict[str, Any]] = [{}, {"format": "mixed"}, {"format": "mixed", "utc": True}]
    for options in attempts:  # one inferred format is fast; value by value is the fallback
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
                parsed: pd.Series = pd.to_datetime(values, **options)
        except (ValueError, TypeError, OverflowError):
            continue
        return parsed
    return None


def _parse_times(values: pd.Series, what: str) -> pd.Series:
    parsed = _try_times(values)
    if parsed is not None:
        return parsed
    coerced = pd.to_datetime(values, format="mixed", errors="coerce", utc=True)
    bad = values.notna() & coerced.isna()
    example = values[bad].iloc[0] if bad.any() else None
    raise DataError(
        f"column {values.name!r} holds values that are not dates (e.g. {example!r}), "
        f"so it cannot be compared with {what}; clean the column or pick another"
    )


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
