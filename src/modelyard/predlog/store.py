"""Segment files of the prediction log, and their index in the metadata database.

A *segment* is one Parquet file, written once and never changed::

    <home>/predictions/model=<name>/version=<v>/date=<YYYY-MM-DD>/<uuid>.parquet
    <home>/feedback/model=<name>/date=<YYYY-MM-DD>/<uuid>.parquet

The folders are Hive-style partitions, so DuckDB, ``pyarrow.dataset`` and pandas read
the tree directly. The model, version and date live only in the folder names, never as
columns inside the files: pandas (through pyarrow's hive partitioning) refuses a field
that is both a partition key and a column of the file.

A segment is first written under a hidden temporary name in its own folder, synced,
then renamed into place, so a reader never sees a half-written file. Then it is
recorded in ``modelyard_prediction_segments`` or ``modelyard_feedback_segments`` (the
registry's database), which is how readers find the segments of a model, version and
time window without listing folders.

This module is the storage layer shared by :mod:`modelyard.predlog.writer` and
:mod:`modelyard.predlog.reader`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.errors import ModelyardError
from modelyard.registry import db
from modelyard.settings import Settings

__all__ = [
    "FEEDBACK_DIR",
    "PREDICTIONS_DIR",
    "TEMP_SUFFIX",
    "SegmentKind",
    "SegmentRecord",
    "all_indexed_paths",
    "as_utc",
    "delete_segments",
    "find_segments",
    "home_of",
    "insert_segments",
    "open_index",
    "remove_orphans",
    "segment_folder",
    "write_segment",
]

SegmentKind = Literal["predictions", "feedback"]

PREDICTIONS_DIR = "predictions"
FEEDBACK_DIR = "feedback"
#: Suffix of a segment being written; readers globbing ``*.parquet`` never match it.
TEMP_SUFFIX = ".tmp"
#: A temporary segment file older than this is left by a write a crash cut short (a
#: write takes well under a second), so opening the log removes it. Younger ones may
#: belong to another process writing right now (``serve --workers N``) and are kept.
ORPHAN_AGE_SECONDS = 300.0
_COMPRESSION = "zstd"


@dataclass(frozen=True)
class SegmentRecord:
    """One segment as the index records it (``version`` is None for feedback)."""

    kind: SegmentKind
    model: str
    version: int | None
    path: str  # relative to the home folder, with '/' separators
    rows: int
    min_received_at: datetime
    max_received_at: datetime
    created_at: datetime
    bytes: int


def home_of(settings: Settings) -> Path:
    """The absolute home folder segment paths are relative to."""
    return settings.home.expanduser().absolute()


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def segment_folder(
    home: Path, kind: SegmentKind, model: str, version: int | None, day: date
) -> Path:
    """The partition folder of a model's segments for one (UTC) day."""
    folder = home / kind / f"model={model}"
    if kind == "predictions":
        folder = folder / f"version={version}"
    return folder / f"date={day.isoformat()}"


def write_segment(table: pa.Table, folder: Path) -> tuple[Path, int]:
    """Write ``table`` as a new segment in ``folder``, atomically; return (path, bytes).

    The file is written under a hidden temporary name in the same folder, synced to disk,
    then renamed into place (``os.replace`` is atomic within a filesystem).
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.parquet"
    final = folder / name
    temporary = folder / f".{name}{TEMP_SUFFIX}"
    try:
        # A path, not a Python file object: pyarrow then writes natively, without taking
        # the GIL for every chunk (which stalled the server's event loop thread).
        pq.write_table(table, str(temporary), compression=_COMPRESSION)
        handle = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(folder)
    return final, final.stat().st_size


def remove_orphans(home: Path, *, older_than: float = ORPHAN_AGE_SECONDS) -> int:
    """Delete temporary segment files older than ``older_than`` seconds; return how many."""
    removed = 0
    now = time.time()
    for kind in (PREDICTIONS_DIR, FEEDBACK_DIR):
        root = home / kind
        if not root.is_dir():
            continue
        for path in root.rglob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # another process got there first
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
    return removed


def _sync_folder(folder: Path) -> None:
    # Makes the rename itself durable across a power loss; not every OS allows it.
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


# -- the index ----------------------------------------------------------------------


def open_index(settings: Settings) -> Engine:
    """An engine on the metadata database, its schema upgraded to the newest revision.

    Raises:
        RegistryError: the database cannot be reached, or has a newer schema.
        ModelyardError: the URL is malformed or names an unsupported database.
    """
    engine = db.create_registry_engine(settings.resolved_registry_url())
    try:
        db.upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _table(kind: SegmentKind) -> sa.Table:
    return db.prediction_segments if kind == "predictions" else db.feedback_segments


def insert_segments(engine: Engine, records: Sequence[SegmentRecord]) -> None:
    """Record segments in the index; a path already recorded is left as it is.

    Raises:
        RegistryError: the database failed, or stayed busy.
    """
    if not records:
        return

    def work(connection: Connection) -> None:
        for kind in ("predictions", "feedback"):
            rows = [_as_row(record) for record in records if record.kind == kind]
            if rows:
                connection.execute(_insert_new_paths(connection, _table(kind)), rows)

    db.run_write(engine, work)


def _as_row(record: SegmentRecord) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": record.model,
        "path": record.path,
        "rows": record.rows,
        "min_received_at": record.min_received_at,
        "max_received_at": record.max_received_at,
        "created_at": record.created_at,
        "bytes": record.bytes,
    }
    if record.kind == "predictions":
        row["version"] = record.version
    return row


def _insert_new_paths(connection: Connection, table: sa.Table) -> Any:
    # Idempotent on the path, so a segment recorded twice (an index write retried after
    # a lost reply, or repair_index racing a writer) is not an error.
    dialect = connection.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=["path"])
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=["path"])
    raise ModelyardError(f"database {dialect!r} is not supported for the prediction log")


def find_segments(
    engine: Engine,
    kind: SegmentKind,
    model: str,
    *,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[SegmentRecord]:
    """The segments of ``model`` holding rows received in ``[start, end)``, oldest first.

    Raises:
        RegistryError: the database failed.
    """
    table = _table(kind)
    query = sa.select(table).where(table.c.model == model)
    if version is not None and kind == "predictions":
        query = query.where(table.c.version == version)
    if start is not None:
        query = query.where(table.c.max_received_at >= as_utc(start))
    if end is not None:
        query = query.where(table.c.min_received_at < as_utc(end))
    query = query.order_by(table.c.min_received_at, table.c.id)
    rows = db.run_read(engine, lambda connection: connection.execute(query).mappings().all())
    return [
        SegmentRecord(
            kind=kind,
            model=row["model"],
            version=row["version"] if kind == "predictions" else None,
            path=row["path"],
            rows=row["rows"],
            min_received_at=row["min_received_at"],
            max_received_at=row["max_received_at"],
            created_at=row["created_at"],
            bytes=row["bytes"],
        )
        for row in rows
    ]


def all_indexed_paths(engine: Engine) -> dict[str, SegmentKind]:
    """Every path recorded in the index, with its kind.

    Raises:
        RegistryError: the database failed.
    """

    def work(connection: Connection) -> dict[str, SegmentKind]:
        found: dict[str, SegmentKind] = {}
        for kind in ("predictions", "feedback"):
            table = _table(kind)
            for (path,) in connection.execute(sa.select(table.c.path)):
                found[path] = kind
        return found

    return db.run_read(engine, work)


def delete_segments(engine: Engine, paths: dict[str, SegmentKind]) -> None:
    """Remove index entries by path (the files are not touched).

    Raises:
        RegistryError: the database failed, or stayed busy.
    """
    if not paths:
        return

    def work(connection: Connection) -> None:
        for kind in ("predictions", "feedback"):
            chosen = [path for path, of_kind in paths.items() if of_kind == kind]
            if chosen:
                table = _table(kind)
                connection.execute(sa.delete(table).where(table.c.path.in_(chosen)))

    db.run_write(engine, work)
