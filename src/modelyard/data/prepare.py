"""Read a project's rows and prepare them for training, as the spec says.

:func:`read_project_rows` is :func:`~modelyard.data.sources.read_source` plus the steps
that need the whole spec, not only its ``data`` section:

- nested columns (lists, structs, maps, arrays in a cell) cannot be features: when
  ``features.drop`` lists them they are kept as JSON text (so the snapshot stores them)
  and left out of the model; otherwise they are refused, with their names;
- rows with a missing target are dropped when ``data.drop_missing_target`` is set (the
  count goes to the lineage), and refused otherwise with their file line numbers;
- rows without a time, under a ``time`` split, are refused with their file line numbers;
- the windowed aggregates of ``features.windows`` are added as columns, point in time
  (:mod:`~modelyard.data.windows`).

Training and reproduction both call it, so a snapshot and a re-read of the source go
through the same steps.

Example:
    >>> import tempfile
    >>> from modelyard.spec import ProjectSpec
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "rows.csv").write_text("x,y\\n1,a\\n2,\\n3,b\\n")
    >>> spec = ProjectSpec.model_validate({
    ...     "name": "demo", "task": "binary", "target": "y",
    ...     "data": {"source": {"path": "rows.csv"}, "drop_missing_target": True},
    ...     "model": {"estimator": "sklearn.linear_model.LogisticRegression"}})
    >>> rows = read_project_rows(spec, folder)
    >>> len(rows.frame), rows.record["dropped_missing_target"]
    (2, 1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import is_object_dtype

from modelyard.errors import DataError
from modelyard.spec import DataSpec, ProjectSpec

__all__ = ["PreparedRows", "nested_columns", "read_project_rows", "row_places"]

_NESTED_TYPES = (list, tuple, dict, set, np.ndarray)
_MAX_LISTED = 5


@dataclass(frozen=True)
class PreparedRows:
    """The rows to train on, and what preparing them did (``record``, for the lineage)."""

    frame: pd.DataFrame
    record: dict[str, Any]


def read_project_rows(spec: ProjectSpec, base_dir: Path) -> PreparedRows:
    """Read ``spec.data.source`` and prepare the rows as the spec says.

    Returns:
        The rows (fresh ``RangeIndex``) and a record: ``dropped_missing_target`` (rows),
        ``nested_columns_as_text`` (names).

    Raises:
        DataError: the source cannot be read, a nested column is not in
            ``features.drop``, or the target has missing values and
            ``data.drop_missing_target`` is not set.
    """
    from modelyard.data.sources import read_source

    frame = read_source(spec.data, base_dir=base_dir)
    where = spec.data.source.path or "the SQL source"
    nested = nested_columns(frame)
    refused = [column for column in nested if column not in spec.features.drop]
    if refused:
        raise DataError(
            f"{where}: column{'s' if len(refused) > 1 else ''} "
            f"{', '.join(map(repr, refused))} hold{'' if len(refused) > 1 else 's'} nested "
            "values (lists, structs or maps), which cannot be features; flatten them into "
            "plain columns, or list them under features.drop to leave them out"
        )
    for column in nested:
        # Kept as JSON text, so the snapshot can store it and features.drop finds it.
        frame[column] = frame[column].map(_as_json, na_action="ignore")
    dropped = 0
    unlabeled = (
        frame[spec.target].isna().to_numpy()
        if spec.target in frame.columns
        else np.zeros(len(frame), dtype=bool)
    )
    _refuse_missing_times(spec, frame, ~unlabeled, where)
    if spec.target in frame.columns:
        missing = unlabeled
        if missing.any() and not spec.data.drop_missing_target:
            count = int(missing.sum())
            raise DataError(
                f"{where}: the target {spec.target!r} is missing in {count} row"
                f"{'s' if count > 1 else ''} ({row_places(spec.data, np.flatnonzero(missing))}); "
                "fill it in the data, or set data.drop_missing_target: true to train "
                "without those rows"
            )
        if missing.any():
            dropped = int(missing.sum())
            frame = frame.loc[~missing].reset_index(drop=True)
            if frame.empty:
                raise DataError(f"{where}: every row has a missing target {spec.target!r}")
    _check_positive_class(spec, frame, where)
    if spec.features.windows and spec.data.timestamp_column is not None:
        from modelyard.data.windows import window_columns

        windows = window_columns(frame, spec.features.windows, spec.data.timestamp_column)
        frame = pd.concat([frame, windows], axis=1)
    record = {"dropped_missing_target": dropped, "nested_columns_as_text": nested}
    return PreparedRows(frame=frame, record=record)


def _refuse_missing_times(
    spec: ProjectSpec, frame: pd.DataFrame, kept: np.ndarray, where: str
) -> None:
    """A time split needs a time on every kept row; name the rows as the file shows them.

    (The split itself refuses them too, by position among the rows it is given; here,
    before unlabeled rows are dropped, the positions are still the source's.)
    """
    if spec.split.method != "time":
        return
    column = spec.split.column or spec.data.timestamp_column
    if column is None or column not in frame.columns:
        return
    missing = frame[column].isna().to_numpy() & kept
    if missing.any():
        count = int(missing.sum())
        raise DataError(
            f"{where}: the time split column {column!r} is missing in {count} row"
            f"{'s' if count > 1 else ''} ({row_places(spec.data, np.flatnonzero(missing))}); "
            "a time split needs a time on every row: fill it in the data, or drop those rows"
        )


def _check_positive_class(spec: ProjectSpec, frame: pd.DataFrame, where: str) -> None:
    wanted = spec.positive_class
    if wanted is None or spec.target not in frame.columns:
        return
    labels = frame[spec.target].dropna().unique().tolist()
    text = str(wanted).lower()
    if not any(label == wanted or str(label).lower() == text for label in labels):
        shown = ", ".join(repr(label) for label in sorted(map(str, labels))[:10])
        raise DataError(
            f"{where}: positive_class {wanted!r} is not a class of the target "
            f"{spec.target!r}; its classes are {shown}"
        )


def _as_json(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=str, sort_keys=True)


def nested_columns(frame: pd.DataFrame) -> list[str]:
    """The columns whose cells hold lists, tuples, dicts, sets or arrays.

    Example:
        >>> nested_columns(pd.DataFrame({"a": [1, 2], "tags": [["x"], ["y", "z"]]}))
        ['tags']
    """
    found = []
    for column in frame.columns:
        values = frame[column]
        dtype = values.dtype
        if isinstance(dtype, pd.ArrowDtype):
            arrow = dtype.pyarrow_dtype
            if pa.types.is_nested(arrow):
                found.append(str(column))
            continue
        if not is_object_dtype(dtype):
            continue
        present = values.dropna()
        if len(present) and bool(present.map(lambda v: isinstance(v, _NESTED_TYPES)).any()):
            found.append(str(column))
    return found


def row_places(data: DataSpec, rows: np.ndarray) -> str:
    """Where rows sit in the source, as its users look for them.

    A CSV file read with its header on the first line holds data row ``i`` (0-based) on
    file line ``i + 2`` (when no value spans lines); other sources, and rows filtered by
    ``as_of``, are named by 0-based row positions.

    Example:
        >>> spec = DataSpec.model_validate({"source": {"path": "a.csv"}})
        >>> row_places(spec, np.array([0, 7]))
        'file lines 2, 9'
    """
    shown = [int(row) for row in rows[:_MAX_LISTED]]
    more = ", ..." if len(rows) > _MAX_LISTED else ""
    source = data.source
    plain_csv = (
        source.kind == "csv"
        and data.as_of is None
        and not (
            {"header", "names", "skiprows", "comment", "skip_blank_lines"} & set(source.options)
        )
    )
    if plain_csv:
        return (
            "file line"
            + ("s " if len(rows) > 1 else " ")
            + ", ".join(str(row + 2) for row in shown)
            + more
        )
    return (
        "row"
        + ("s " if len(rows) > 1 else " ")
        + ", ".join(map(str, shown))
        + more
        + (" (0-based)")
    )
