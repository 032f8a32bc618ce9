"""Reading SQL sources in a fixed order (sorted in SQL), in chunks, with passwords masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from modelyard.data._checks import _check_names, _hint
from modelyard.errors import DataError
from modelyard.spec import DataSpec

logger = logging.getLogger(__name__)


_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@]*(@)")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return _PASSWORD_RE.sub(r"\1***\2", url)


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
