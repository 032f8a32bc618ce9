"""Split rows into training and evaluation rows, the same way every time.

Three methods (``split.method`` in the spec):

- ``random``: scikit-learn's ``train_test_split`` with the project seed, stratified on
  the target for classification when ``split.stratify`` is on;
- ``time``: evaluation rows are those at or after ``split.test_from`` in
  ``split.column`` (default: ``data.timestamp_column``); without ``test_from``, the
  latest ``test_size`` share of rows, cut between two distinct times so that rows
  with the same time stay on one side;
- ``group``: ``GroupShuffleSplit`` with the seed: every group of ``split.column`` goes
  wholly to one side.

Both sides must end up with rows; otherwise a :class:`DataError` says what to change.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from modelyard.data.schema import category_keys
from modelyard.data.sources import comparable_times
from modelyard.errors import DataError
from modelyard.spec import SplitSpec

__all__ = ["split_rows"]

logger = logging.getLogger(__name__)


def split_rows(
    df: pd.DataFrame,
    split: SplitSpec,
    *,
    target: str,
    task: str,
    seed: int,
    timestamp_column: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and evaluation rows of ``df``.

    Args:
        df: The rows, in the order the source gave them.
        split: The split section of the spec.
        target: The target column (used to stratify a random split).
        task: ``regression``, ``binary`` or ``multiclass``.
        seed: The project seed.
        timestamp_column: ``data.timestamp_column``, the default column of a time split.

    Returns:
        ``(train, test)``: sorted int64 row positions, disjoint, covering every row.

    Raises:
        DataError: a needed column is missing or has missing values, a class is too
            small to stratify, or one side would be empty.

    Example:
        >>> frame = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
        >>> train, test = split_rows(frame, SplitSpec(test_size=0.2), target="y",
        ...                          task="binary", seed=0, timestamp_column=None)
        >>> len(train), len(test)
        (8, 2)
    """
    if len(df) < 2:
        raise DataError(f"cannot split {len(df)} row(s) into training and evaluation rows")
    if split.method == "random":
        test = _random_test(df, split, target=target, task=task, seed=seed)
    elif split.method == "time":
        column = split.column or timestamp_column
        if column is None:
            raise DataError("a 'time' split needs split.column or data.timestamp_column")
        test = _time_test(df, split, column)
    else:
        assert split.column is not None
        test = _group_test(df, split, split.column, seed)
    mask = np.zeros(len(df), dtype=bool)
    mask[test] = True
    train_rows = np.flatnonzero(~mask).astype(np.int64)
    test_rows = np.flatnonzero(mask).astype(np.int64)
    _check_sides(split, train_rows, test_rows)
    logger.debug(
        "%s split: %d training rows, %d evaluation rows",
        split.method,
        len(train_rows),
        len(test_rows),
    )
    return train_rows, test_rows


def _random_test(
    df: pd.DataFrame, split: SplitSpec, *, target: str, task: str, seed: int
) -> np.ndarray:
    positions = np.arange(len(df))
    stratify = None
    if task != "regression" and split.stratify:
        labels = _column(df, target, "the target (to stratify the split)")
        if labels.isna().any():
            raise DataError(
                f"the target {target!r} has missing values; drop those rows before splitting"
            )
        keys = category_keys(labels)
        counts = keys.value_counts()
        small = counts[counts < 2]
        if len(small):
            raise DataError(
                f"cannot stratify the split: class(es) {', '.join(map(repr, small.index))} of "
                f"target {target!r} have a single row; drop or merge them, or set "
                "split.stratify: false"
            )
        stratify = keys.to_numpy()
    try:
        _, test = train_test_split(
            positions, test_size=split.test_size, random_state=seed, shuffle=True, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(
            f"cannot stratify the split ({exc}); raise split.test_size so every class gets an "
            "evaluation row, or set split.stratify: false"
        ) from None
    return np.asarray(test)


def _time_test(df: pd.DataFrame, split: SplitSpec, column: str) -> np.ndarray:
    raw = _column(df, column, "the time split column")
    missing = raw.isna().to_numpy()
    if missing.any():
        rows = ", ".join(str(row) for row in np.flatnonzero(missing)[:5])
        raise DataError(
            f"the time split column {column!r} has {int(missing.sum())} missing values "
            f"(rows {rows}); a time split needs a time on every row: fill or drop them"
        )
    if split.test_from is not None:
        values, bound = comparable_times(raw, split.test_from, what="split.test_from")
        return np.flatnonzero((values >= bound).to_numpy(dtype=bool))
    values, _ = comparable_times(raw, None, what="the time split")
    if getattr(values.dtype, "tz", None) is not None:
        values = values.dt.tz_convert(None)  # UTC instants sort without objects
    times, inverse = np.unique(values.to_numpy(), return_inverse=True)
    if len(times) < 2:
        raise DataError(
            f"the time split column {column!r} holds a single time ({times[0]}); "
            "a time split needs at least two distinct times"
        )
    counts = np.bincount(inverse.ravel(), minlength=len(times))
    rows_before = np.cumsum(counts)[:-1]  # rows before the cut at times[1], times[2], ...
    wanted = (1.0 - split.test_size) * len(df)
    cut = int(np.argmin(np.abs(rows_before - wanted))) + 1
    return np.flatnonzero(inverse.ravel() >= cut)


def _group_test(df: pd.DataFrame, split: SplitSpec, column: str, seed: int) -> np.ndarray:
    groups = _column(df, column, "the group split column")
    missing = groups.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"the group split column {column!r} has {int(missing.sum())} missing values; "
            "every row needs a group: fill or drop them"
        )
    codes, uniques = pd.factorize(groups, sort=True)
    if len(uniques) < 2:
        raise DataError(
            f"the group split column {column!r} holds a single group; a group split needs "
            "at least two groups"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=split.test_size, random_state=seed)
    _, test = next(splitter.split(np.zeros(len(df)), groups=codes))
    return np.asarray(test)


def _column(df: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in df.columns:
        raise DataError(f"{role} {name!r} is not a column of the data")
    return df[name]


def _check_sides(split: SplitSpec, train: np.ndarray, test: np.ndarray) -> None:
    if len(test) == 0:
        fix = (
            "move split.test_from earlier (it is after every time in the data)"
            if split.test_from is not None
            else "raise split.test_size"
        )
        raise DataError(f"the {split.method} split left no evaluation rows; {fix}")
    if len(train) == 0:
        fix = (
            "move split.test_from later (it is before every time in the data)"
            if split.test_from is not None
            else "lower split.test_size"
        )
        raise DataError(f"the {split.method} split left no training rows; {fix}")
