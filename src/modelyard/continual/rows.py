"""The fresh training rows of a retraining: the source as of now, plus "log and wait".

"Log and wait": the prediction log holds each row's inputs as they were when it was
predicted; labels come later (``modelyard labels add``, ``POST /v1/feedback``). Joined,
they are training rows whose features are exactly what the model saw in production, so
no point-in-time join against a changing source is needed.

A logged row becomes a source row: ``input.<column>`` under the column's own name, the
latest label as the target (a number for regression; for classification the source's
own class value whose category text is the label's), columns the log lacks empty. When
the spec has a timestamp column the log did not record, the time the prediction was
received stands in for it, so a time split puts the newest rows in evaluation. Logged
rows whose id columns (``data.id_columns``) name a row the source already has are left
out: the source is the record of truth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.contract.text import category_texts
from modelyard.data.prepare import PreparedRows, read_project_rows
from modelyard.predlog import read_predictions
from modelyard.predlog.tables import INPUT_PREFIX
from modelyard.settings import Settings
from modelyard.spec import ProjectSpec

__all__ = ["FreshRows", "fresh_rows", "labelled_log_rows"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FreshRows:
    """The rows to retrain on, and where they came from."""

    prepared: PreparedRows
    as_of: datetime | None
    source_rows: int
    log_rows: int
    labels_through: datetime | None


def fresh_rows(
    settings: Settings, spec: ProjectSpec, project_dir: Path, *, now: datetime
) -> FreshRows:
    """The source read as of ``now`` (when it has a timestamp column), plus the labelled
    prediction log when ``retrain.prediction_log`` allows.

    Raises:
        DataError: the source cannot be read, or the log is unreadable.
    """
    as_of = None
    reading = spec
    if spec.data.timestamp_column is not None:
        as_of = now
        reading = spec.model_copy(update={"data": spec.data.model_copy(update={"as_of": now})})
    prepared = read_project_rows(reading, project_dir)
    source = prepared.frame
    logged = pd.DataFrame()
    through = None
    if spec.retrain.prediction_log:
        logged, through = labelled_log_rows(settings, spec, source)
    frame = source if logged.empty else pd.concat([source, logged], ignore_index=True)
    record = {**prepared.record}
    logger.info("%s: %d source and %d logged rows", spec.name, len(source), len(logged))
    return FreshRows(
        prepared=PreparedRows(frame=frame, record=record),
        as_of=as_of,
        source_rows=len(source),
        log_rows=len(logged),
        labels_through=through,
    )


def labelled_log_rows(
    settings: Settings, spec: ProjectSpec, source: pd.DataFrame
) -> tuple[pd.DataFrame, datetime | None]:
    """The labelled rows of ``spec.name``'s prediction log, shaped like ``source``, and
    the time of the latest label among them (see the module docstring).

    Raises:
        DataError: a segment of the log is unreadable.
    """
    logged = read_predictions(settings, spec.name, with_feedback=True)
    if logged.empty or "label" not in logged.columns:
        return source.iloc[:0], None
    logged = logged[logged["label"].notna()].reset_index(drop=True)
    if logged.empty:
        return source.iloc[:0], None
    rows = pd.DataFrame(index=logged.index)
    for column in source.columns:
        name = INPUT_PREFIX + str(column)
        if column == spec.target:
            rows[column] = _target(logged, source[column], spec)
        elif name in logged.columns:
            rows[column] = _like(logged[name], source[column])
        elif column == spec.data.timestamp_column:
            rows[column] = _like(logged["received_at"], source[column])
        else:
            rows[column] = pd.Series([None] * len(logged), index=logged.index, dtype=object)
    rows = rows[rows[spec.target].notna()]
    rows = _without_known_ids(rows, source, spec.data.id_columns)
    through = pd.to_datetime(logged["feedback_at"], utc=True).max().to_pydatetime()
    return rows.reset_index(drop=True), through


def _target(logged: pd.DataFrame, source: pd.Series[Any], spec: ProjectSpec) -> pd.Series[Any]:
    """The labels as target values: numbers for regression, the source's class values
    for classification (a class the source never had keeps the label's text)."""
    if spec.task == "regression":
        return pd.to_numeric(logged["label_float"], errors="coerce")
    known = pd.unique(source.dropna())
    by_text = dict(zip(category_texts(known).tolist(), known.tolist(), strict=True))
    values = [by_text.get(label, label) for label in logged["label"].tolist()]
    return pd.Series(values, index=logged.index)


def _like(values: pd.Series[Any], source: pd.Series[Any]) -> pd.Series[Any]:
    """Logged ``values`` in the source column's kind: times as the source keeps them
    (aware or naive UTC, or ISO text), everything else as logged."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        moments = pd.to_datetime(values, utc=True)
        if isinstance(source.dtype, pd.DatetimeTZDtype):
            return moments.dt.tz_convert(source.dtype.tz)
        if pd.api.types.is_datetime64_dtype(source.dtype):
            return moments.dt.tz_convert(None)
        if pd.api.types.is_numeric_dtype(source.dtype):
            return pd.Series(np.nan, index=values.index)
        # Microseconds kept: requests logged within one second must not tie, or a time
        # split would have to put them all on one side.
        return moments.dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return values


def _without_known_ids(rows: pd.DataFrame, source: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    present = [c for c in ids if c in source.columns]
    if not present or rows[present].isna().all(axis=None):
        return rows
    # Compared as category texts: a logged 1000.0 is the source's 1000.
    known = pd.MultiIndex.from_arrays([category_texts(source[c]) for c in present])
    mine = pd.MultiIndex.from_arrays([category_texts(rows[c]) for c in present])
    kept = rows[~mine.isin(known)]
    if len(kept) < len(rows):
        dropped = len(rows) - len(kept)
        logger.info("%d logged rows already in the source (by %s) left out", dropped, present)
    return kept
