"""Reading the prediction log: predictions (with their labels) by model, version and time.

Readers find segments through the index in the metadata database, never by listing
folders, then read only those files and keep the rows received in ``[start, end)``.
Times are compared in UTC; a naive ``start`` or ``end`` is taken to be UTC.

For SQL over the log, hand :func:`segment_paths` to DuckDB, or point it at the whole
tree (the folders are Hive partitions)::

    import duckdb
    duckdb.sql(
        "SELECT version, avg(latency_ms) FROM read_parquet("
        "'~/.modelyard/predictions/model=house-prices/**/*.parquet', "
        "hive_partitioning=true, union_by_name=true) GROUP BY version"
    )

Reading the whole tree also sees segments not yet indexed (a writer between rename and
index, or one that crashed there); :func:`repair_index` records such files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from modelyard.errors import DataError
from modelyard.predlog import store
from modelyard.predlog.tables import BASE_FIELDS, FEEDBACK_FIELDS, TIMESTAMP
from modelyard.settings import Settings

__all__ = ["IndexRepair", "read_feedback", "read_predictions", "repair_index", "segment_paths"]

logger = logging.getLogger(__name__)

_SORT_KEYS = [("received_at", "ascending"), ("request_id", "ascending"), ("row", "ascending")]
_REPAIR_HINT = "run modelyard.predlog.repair_index(settings) to bring the index up to date"


def segment_paths(
    settings: Settings,
    model: str,
    *,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Path]:
    """Absolute paths of the prediction segments that may hold rows in ``[start, end)``.

    Segments are chosen by the time span the index records for them, so a segment may
    also hold rows outside the window: filter on ``received_at`` when reading.

    Raises:
        RegistryError: the metadata database cannot be read.
    """
    home = store.home_of(settings)
    engine = store.open_index(settings)
    try:
        records = store.find_segments(
            engine, "predictions", model, version=version, start=start, end=end
        )
    finally:
        engine.dispose()
    return [home / record.path for record in records]


def read_predictions(
    settings: Settings,
    model: str,
    *,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    with_feedback: bool = False,
) -> pd.DataFrame:
    """The logged predictions of ``model`` received in ``[start, end)``, oldest first.

    Columns: request_id, row, received_at (UTC), model, version, endpoint, latency_ms,
    ``input.<column>``..., prediction, ``proba.<class>``... (classifiers); with
    ``with_feedback``, also label, label_float and feedback_at (null when no feedback),
    the latest feedback for each (request_id, row). A model with nothing logged gives an
    empty frame with the columns that do not depend on the model (request_id through
    latency_ms, and the feedback columns when asked). Versions with different inputs
    are read together; columns one lacks are null there.

    Args:
        settings: where the home folder and the metadata database are.
        model: the model's name.
        version: only this version; default: all.
        start: only rows received at or after this time.
        end: only rows received before this time.
        with_feedback: join the feedback labels.

    Raises:
        DataError: a segment the index lists is missing or unreadable, or versions'
            columns cannot be combined (read one version at a time then).
        RegistryError: the metadata database cannot be read.
    """
    home = store.home_of(settings)
    engine = store.open_index(settings)
    try:
        records = store.find_segments(
            engine, "predictions", model, version=version, start=start, end=end
        )
        feedback_records = store.find_segments(engine, "feedback", model) if with_feedback else []
    finally:
        engine.dispose()
    window = _window(start, end)
    tables = [_read_predictions_segment(home, record, window) for record in records]
    table = _combine(tables, model) if tables else pa.schema(list(BASE_FIELDS)).empty_table()
    frame: pd.DataFrame = table.sort_by(_SORT_KEYS).to_pandas()
    if with_feedback:
        labels = _latest_feedback(home, feedback_records, None).rename(
            columns={"received_at": "feedback_at"}
        )
        frame = frame.merge(labels, on=["request_id", "row"], how="left", validate="many_to_one")
    return frame


def read_feedback(
    settings: Settings,
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """The latest feedback per (request_id, row) for ``model``, among that received in
    ``[start, end)``.

    Columns: request_id, row, label (text), label_float (null unless numeric),
    received_at (UTC).

    Raises:
        DataError: a segment the index lists is missing or unreadable.
        RegistryError: the metadata database cannot be read.
    """
    home = store.home_of(settings)
    engine = store.open_index(settings)
    try:
        records = store.find_segments(engine, "feedback", model, start=start, end=end)
    finally:
        engine.dispose()
    return _latest_feedback(home, records, _window(start, end))


# -- reading segments ---------------------------------------------------------------


def _window(start: datetime | None, end: datetime | None) -> ds.Expression | None:
    received = ds.field("received_at")
    conditions = []
    if start is not None:
        conditions.append(received >= pa.scalar(store.as_utc(start), TIMESTAMP))
    if end is not None:
        conditions.append(received < pa.scalar(store.as_utc(end), TIMESTAMP))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else conditions[0] & conditions[1]


def _read_segment(
    home: Path, record: store.SegmentRecord, window: ds.Expression | None
) -> pa.Table:
    path = home / record.path
    if not path.is_file():
        raise DataError(
            f"segment {path} of model {record.model!r}, listed in the prediction log index, "
            f"is missing; {_REPAIR_HINT}"
        )
    try:
        # partitioning=None: model, version and date come from the index record instead.
        return pq.read_table(path, filters=window, partitioning=None)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"segment {path} of model {record.model!r} is unreadable: {exc}; move the file "
            f"away, then {_REPAIR_HINT}"
        ) from exc


def _read_predictions_segment(
    home: Path, record: store.SegmentRecord, window: ds.Expression | None
) -> pa.Table:
    table = _read_segment(home, record, window).replace_schema_metadata(None)
    rows = table.num_rows
    table = table.add_column(3, BASE_FIELDS[3], pa.repeat(pa.scalar(record.model), rows))
    version = pa.scalar(record.version, pa.int32())
    return table.add_column(4, BASE_FIELDS[4], pa.repeat(version, rows))


def _combine(tables: list[pa.Table], model: str) -> pa.Table:
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(
            f"logged predictions of model {model!r} cannot be read together: {exc}; "
            "the versions differ in their columns, so read one version at a time (version=...)"
        ) from exc


def _latest_feedback(
    home: Path, records: list[store.SegmentRecord], window: ds.Expression | None
) -> pd.DataFrame:
    tables = [
        _read_segment(home, record, window).replace_schema_metadata(None) for record in records
    ]
    schema = pa.schema(list(FEEDBACK_FIELDS))
    table = pa.concat_tables(
        [t.select(schema.names).cast(schema) for t in tables] or [schema.empty_table()]
    )
    # Records come oldest first and rows within a segment are unique, so a stable sort by
    # received_at keeps the later segment last among equal times.
    frame: pd.DataFrame = table.to_pandas().sort_values("received_at", kind="stable")
    latest = frame.drop_duplicates(["request_id", "row"], keep="last")
    return latest.sort_values(["received_at", "request_id", "row"], kind="stable").reset_index(
        drop=True
    )


# -- repair -------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexRepair:
    """What :func:`repair_index` did: segments recorded, entries dropped, files skipped.

    ``skipped`` lists files that are unreadable or not where segments belong.
    """

    added: int
    removed: int
    skipped: tuple[Path, ...]


_PREDICTION_FILE = re.compile(
    r"^predictions/model=(?P<model>[^/]+)/version=(?P<version>\d+)/date=[^/]+/[^/.][^/]*\.parquet$"
)
_FEEDBACK_FILE = re.compile(r"^feedback/model=(?P<model>[^/]+)/date=[^/]+/[^/.][^/]*\.parquet$")


def repair_index(settings: Settings) -> IndexRepair:
    """Make the index match the segment files under the home folder.

    Records segment files the index lacks (left by a crash between a segment's rename
    and its index record) and drops index entries whose file is gone (e.g. deleted by a
    retention job). Safe to run while writers are running.

    Raises:
        RegistryError: the metadata database cannot be read or written.
    """
    home = store.home_of(settings)
    engine = store.open_index(settings)
    try:
        indexed = store.all_indexed_paths(engine)
        missing = {path: kind for path, kind in indexed.items() if not (home / path).is_file()}
        found: list[store.SegmentRecord] = []
        skipped: list[Path] = []
        for kind in ("predictions", "feedback"):
            for path in sorted((home / kind).glob("**/*.parquet")):
                relative = path.relative_to(home).as_posix()
                if relative in indexed:
                    continue
                record = _record_of(home, relative)
                if record is None:
                    skipped.append(path)
                elif record.rows:
                    found.append(record)
        store.insert_segments(engine, found)
        store.delete_segments(engine, missing)
    finally:
        engine.dispose()
    if found or missing or skipped:
        logger.info(
            "prediction log index repaired: %d segments added, %d entries removed, "
            "%d files skipped",
            len(found),
            len(missing),
            len(skipped),
        )
    return IndexRepair(added=len(found), removed=len(missing), skipped=tuple(skipped))


def _record_of(home: Path, relative: str) -> store.SegmentRecord | None:
    prediction = _PREDICTION_FILE.match(relative)
    feedback = _FEEDBACK_FILE.match(relative)
    match = prediction or feedback
    if match is None:
        logger.warning("%s is not where the prediction log puts segments; skipped", relative)
        return None
    path = home / relative
    try:
        received = pq.read_table(path, columns=["received_at"], partitioning=None)["received_at"]
        span = pc.min_max(received).as_py()
    except (OSError, pa.ArrowException, KeyError) as exc:
        logger.warning("segment %s is unreadable (%s); not indexed", path, exc)
        return None
    status = path.stat()
    return store.SegmentRecord(
        kind="predictions" if prediction else "feedback",
        model=match["model"],
        version=int(prediction["version"]) if prediction else None,
        path=relative,
        rows=len(received),
        min_received_at=span["min"],
        max_received_at=span["max"],
        created_at=datetime.fromtimestamp(status.st_mtime, UTC),
        bytes=status.st_size,
    )
