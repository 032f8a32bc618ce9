"""The registry's database: engines, schema migrations and transactions.

The tables are defined in :mod:`modelyard.registry.tables` and re-exported here.

The schema is created and upgraded only by the Alembic migrations in
``modelyard/registry/migrations``, run by :func:`upgrade_to_head` each time a registry
is opened. Opening an up-to-date database costs one small query. When two processes
open a fresh database at once, one migrates while the other waits: on SQLite behind a
lock file next to the database, on PostgreSQL behind a transaction-level advisory lock.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from filelock import FileLock, Timeout
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.pool import StaticPool

from modelyard._optional import require
from modelyard.errors import ModelyardError, RegistryError
from modelyard.registry.tables import (
    AUDIT_ACTIONS,
    BATCH_JOB_STATES,
    UTCDateTime,
    aliases,
    artifacts,
    audit,
    batch_deliveries,
    batch_failures,
    batch_jobs,
    batch_results,
    feedback_segments,
    metadata,
    models,
    prediction_segments,
    routing_events,
    routing_policies,
    versions,
)

__all__ = [
    "AUDIT_ACTIONS",
    "UTCDateTime",
    "BATCH_JOB_STATES",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "WRITE_OPTION",
    "aliases",
    "alembic_config",
    "artifacts",
    "audit",
    "batch_deliveries",
    "batch_failures",
    "batch_jobs",
    "batch_results",
    "create_registry_engine",
    "current_revision",
    "feedback_segments",
    "head_revision",
    "insert_columns",
    "insert_many",
    "mask_url",
    "metadata",
    "models",
    "prediction_segments",
    "routing_events",
    "routing_policies",
    "run_read",
    "run_write",
    "upgrade_to_head",
    "utcnow",
    "versions",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Alembic's bookkeeping table, named so it cannot clash with another application's.
VERSION_TABLE = "modelyard_alembic_version"
#: Connection execution option: this connection's transactions will write.
WRITE_OPTION = "modelyard_write"
#: How long SQLite waits for another writer, and a migration for another migrator.
BUSY_TIMEOUT_SECONDS = 30.0
MIGRATION_LOCK_TIMEOUT_SECONDS = 300.0
#: Attempts at a write transaction that meets a lock, a race or a serialisation failure,
#: and the time after which no new attempt starts (SQLite already waits BUSY_TIMEOUT
#: inside each attempt).
WRITE_ATTEMPTS = 12
WRITE_RETRY_SECONDS = 30.0
# Any fixed 64-bit number works; it only has to be the same in every modelyard process.
_PG_MIGRATION_LOCK_KEY = 0x6D6F64656C796172  # "modelyar"


# -- engines ------------------------------------------------------------------------


def mask_url(url: str | sa.URL) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def create_registry_engine(url: str) -> Engine:
    """An engine for the registry database at ``url`` (SQLite or PostgreSQL).

    SQLite connections get WAL journaling, a busy timeout and foreign keys, and
    modelyard issues ``BEGIN`` itself (``BEGIN IMMEDIATE`` on connections carrying the
    :data:`WRITE_OPTION`), so a writing transaction takes the write lock up front and
    waits for other writers instead of failing half-way. A bare ``postgresql://`` URL is
    read as ``postgresql+psycopg://``.

    Raises:
        ModelyardError: the URL is malformed or names an unsupported database.
        MissingExtraError: PostgreSQL was asked for but psycopg is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ModelyardError(
            f"registry URL {url!r} is not a database URL; expected e.g. "
            "'sqlite:////path/to/registry.db' or 'postgresql+psycopg://user@host/db' "
            "(set MODELYARD_REGISTRY_URL)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername == "postgresql+psycopg":
            require("psycopg", "postgres")
        return sa.create_engine(parsed, pool_pre_ping=True, json_serializer=_to_json)
    raise ModelyardError(
        f"registry URL {mask_url(parsed)}: database {backend!r} is not supported; "
        "use sqlite:///... or postgresql+psycopg://..."
    )


class _NotJSONError(ValueError):
    """A value bound for a JSON column is not plain JSON data."""


def _to_json(value: Any) -> str:
    # No NaN/Infinity: PostgreSQL's json type rejects them, so SQLite must too.
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _NotJSONError(str(exc)) from exc


def _sqlite_engine(parsed: sa.URL) -> Engine:
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    if in_memory:
        # One shared connection, or every new connection would see an empty database.
        engine = sa.create_engine(
            parsed,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            json_serializer=_to_json,
        )
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, connect_args={"timeout": BUSY_TIMEOUT_SECONDS}, json_serializer=_to_json
        )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


# -- migrations ---------------------------------------------------------------------


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic config for the registry migrations, built in code (no alembic.ini).

    Args:
        url: the database to migrate, for Alembic commands that open their own connection.
        connection: an open connection to migrate on; its transaction is the caller's.

    Example:
        >>> from alembic import command
        >>> command.upgrade(alembic_config("sqlite:////tmp/registry.db"), "head")  # doctest: +SKIP
    """
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser would read '%' in a password as interpolation.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this version of modelyard knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the registry migrations folder has no revisions"
    return head


def current_revision(connection: Connection) -> str | None:
    """The schema revision of the database behind ``connection`` (None if empty)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Create or upgrade the registry schema to the newest revision, if it is not there.

    Raises:
        RegistryError: the database cannot be reached, or carries a schema revision this
            version of modelyard does not know (it was written by a newer modelyard).
    """
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    where = mask_url(engine.url)
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
        if current == head:
            return
        _check_known(script, current, where)
        with _migration_lock(engine), engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(
                        sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK_KEY))
                    )
                current = current_revision(connection)
                if current == head:  # another process migrated while this one waited
                    return
                _check_known(script, current, where)
                logger.info("upgrading registry schema at %s from %s to %s", where, current, head)
                command.upgrade(alembic_config(connection=connection), "head")
    except DBAPIError as exc:
        raise RegistryError(
            f"could not open the registry at {where}: {exc.orig}; check the URL "
            "(MODELYARD_REGISTRY_URL) and that the database is reachable and writable"
        ) from exc


def _check_known(script: ScriptDirectory, revision: str | None, where: str) -> None:
    if revision is None:
        return
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise RegistryError(
            f"the registry at {where} has schema revision {revision!r}, which this modelyard "
            "does not know; it was written by a newer modelyard: upgrade modelyard"
        )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (PostgreSQL locks in SQL)."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        yield
        return
    lock_path = Path(database).expanduser().absolute().with_name(Path(database).name + ".lock")
    lock = FileLock(lock_path, timeout=MIGRATION_LOCK_TIMEOUT_SECONDS)
    try:
        with lock:
            yield
    except Timeout:
        raise RegistryError(
            f"waited {MIGRATION_LOCK_TIMEOUT_SECONDS:.0f} s for another process to finish "
            f"upgrading the registry schema (lock file {lock_path}); try again"
        ) from None


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


# -- transactions -------------------------------------------------------------------


def run_read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one read transaction (one consistent snapshot).

    Raises:
        RegistryError: the database failed; the message names it (password masked).
    """
    with _database_errors(engine), engine.connect() as connection, connection.begin():
        return work(connection)


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys, columns of ``table``) in one DB-API
    ``executemany`` (see :func:`insert_columns`)."""
    if not rows:
        return
    insert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0]})


def insert_columns(conn: Connection, table: sa.Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """Insert rows given column by column (``columns`` maps columns of ``table`` to
    their values, all of one length) in one DB-API ``executemany``, each value bound by
    its column type's own bind processor.

    Why not ``conn.execute(table.insert(), rows)``: SQLAlchemy then prepares every row's
    parameters through its generic per-row machinery, which for a 10,000-row batch chunk
    costs several times the insert itself. The processors it would apply are looked up
    once per column and applied here, a column at a time, so the stored values are the
    same.
    """
    if not columns or not len(next(iter(columns.values()))):
        return
    dialect = conn.dialect
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    order = list(compiled.positiontup or ()) if compiled.positional else list(columns)
    bound_columns = []
    for name in order:
        values = columns[name]
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            # A null is bound once per column (a JSON column's 'null', say): most batch
            # rows leave their probabilities and ids null.
            null = process(None)
            values = [null if value is None else process(value) for value in values]
        bound_columns.append(values)
    bound: list[Any] = list(zip(*bound_columns, strict=True))
    if not compiled.positional:
        bound = [dict(zip(order, values, strict=True)) for values in bound]
    conn.exec_driver_sql(compiled.string, bound)


def run_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one write transaction, retried while it meets other writers.

    On SQLite the transaction takes the write lock at ``BEGIN IMMEDIATE``; on PostgreSQL
    ``work`` locks the rows it changes. A transaction that fails on a lock, a deadlock, a
    serialisation failure or a unique-key race is rolled back whole and run again after
    an exponential, jittered back-off. Errors that ``work`` raises itself propagate at once.

    Raises:
        RegistryError: the database failed, or stayed busy through every attempt.
    """
    where = mask_url(engine.url)
    started = time.monotonic()
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with _database_errors(engine, retry=True), engine.connect() as connection:
                connection.execution_options(**{WRITE_OPTION: True})
                with connection.begin():
                    return work(connection)
        except _Transient as transient:
            waited = time.monotonic() - started
            if attempt == WRITE_ATTEMPTS or waited > WRITE_RETRY_SECONDS:
                raise RegistryError(
                    f"the registry at {where} stayed busy for {waited:.0f} s "
                    f"({attempt} attempts, last: {transient.cause.orig}); try again, and "
                    "check for a process holding a long transaction on it"
                ) from transient.cause
            delay = min(1.0, 0.01 * 2**attempt) * random.uniform(0.5, 1.5)
            logger.debug("registry write attempt %d met %s; retrying", attempt, transient.cause)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class _Transient(Exception):
    def __init__(self, cause: DBAPIError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _is_transient(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01", "55P03", "23505"):  # serialisation, deadlock, lock, unique
        return True
    text = str(exc.orig).lower()
    if isinstance(exc, OperationalError):
        return "database is locked" in text or "database is busy" in text
    return isinstance(exc, SQLIntegrityError) and "unique constraint failed" in text


@contextlib.contextmanager
def _database_errors(engine: Engine, *, retry: bool = False) -> Iterator[None]:
    """Turn SQLAlchemy errors into RegistryError (or _Transient, when retrying)."""
    try:
        yield
    except DBAPIError as exc:
        if retry and _is_transient(exc):
            raise _Transient(exc) from exc
        raise RegistryError(f"registry database {mask_url(engine.url)} failed: {exc.orig}") from exc
    except StatementError as exc:
        # Raised before the database saw the statement, e.g. by the JSON serializer.
        if isinstance(exc.orig, _NotJSONError):
            raise _not_json(engine, exc.orig) from exc
        raise RegistryError(
            f"could not write to the registry at {mask_url(engine.url)}: {exc.orig}"
        ) from exc
    except _NotJSONError as exc:  # psycopg serialises JSON itself, unwrapped by SQLAlchemy
        raise _not_json(engine, exc) from exc


def _not_json(engine: Engine, exc: Exception) -> RegistryError:
    return RegistryError(
        f"could not write to the registry at {mask_url(engine.url)}: {exc}; "
        "spec, lineage, metrics, report and artifact extras must be plain JSON data "
        "(dicts with string keys, lists, strings, finite numbers, booleans, None)"
    )
