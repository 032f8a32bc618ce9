"""Metrics per value of a column (a *slice*): where a model does well and where it does not.

A model can be good on average and bad for one neighbourhood or one customer segment;
slice metrics show it, and slice gates (:mod:`modelyard.evaluation.gates`) can block it.

Example:
    >>> import numpy as np, pandas as pd
    >>> town = pd.Series(["A", "A", "B"], name="town")
    >>> [(s.value, s.rows, s.metrics) for s in slice_metrics(
    ...     town, task="regression", metrics=["mae"],
    ...     y_true=np.array([1.0, 2.0, 3.0]), y_pred=np.array([1.0, 3.0, 5.0]))]
    [('A', 2, {'mae': 0.5}), ('B', 1, {'mae': 2.0})]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from modelyard.errors import DataError
from modelyard.evaluation.metrics import compute_metrics

__all__ = ["MISSING_VALUE", "SliceResult", "slice_metrics"]

#: How a missing value of the slice column is named.
MISSING_VALUE = "(missing)"


class SliceResult(BaseModel):
    """The metrics of the rows where ``column`` has ``value``.

    ``enough_rows`` is ``rows >= min_rows`` of :func:`slice_metrics`: the metrics of a
    smaller slice are computed all the same, but are more noise than signal.
    """

    # "strings" so that a nan metric survives model_dump_json() as "NaN" instead of null.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    column: str
    value: str
    rows: int
    metrics: dict[str, float]
    enough_rows: bool = True


def slice_metrics(
    values: pd.Series,
    *,
    task: str,
    metrics: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: list[Any] | None = None,
    min_rows: int = 1,
    positive: Any = None,
) -> list[SliceResult]:
    """Compute ``metrics`` on the rows of each value of one column.

    Args:
        values: the slice column on the evaluation rows, in the same order as ``y_true``
            (its index is ignored); its name becomes :attr:`SliceResult.column`.
        task: ``regression``, ``binary`` or ``multiclass``.
        metrics: the metric names, as in :func:`~modelyard.evaluation.compute_metrics`.
        y_true: the true targets.
        y_pred: the predictions.
        proba: the class probabilities, if any.
        classes: the model's classes; defaults to those found on all rows, so that every
            slice shares the same positive class.
        min_rows: slices with fewer rows are kept, flagged ``enough_rows=False``.
        positive: the positive class of a binary task (see ``compute_metrics``).

    Returns:
        One :class:`SliceResult` per value (missing values as ``"(missing)"``), the
        largest slice first, ties by value.

    Raises:
        DataError: ``values`` does not have one entry per row.
        SpecError: an unknown task or metric.
    """
    if len(values) != len(y_true):
        raise DataError(
            f"slice column {values.name!r} has {len(values)} values for {len(y_true)} rows; "
            "pass the column of the evaluation rows, in the same order"
        )
    column = str(values.name) if values.name is not None else "slice"
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    probabilities = None if proba is None else np.asarray(proba)
    if task != "regression" and classes is None:
        # Classes found on all rows, not per slice: a slice holding one class must keep
        # the same positive class as the whole evaluation.
        classes = np.unique(np.concatenate([truth, pred])).tolist()
    labels = _slice_labels(values)
    groups = pd.Series(np.arange(len(labels))).groupby(labels.to_numpy()).indices
    results = []
    for value, positions in groups.items():
        scores = compute_metrics(
            task,
            metrics,
            truth[positions],
            pred[positions],
            None if probabilities is None else probabilities[positions],
            classes,
            positive=positive,
        )
        rows = len(positions)
        results.append(
            SliceResult(
                column=column,
                value=str(value),
                rows=rows,
                metrics=scores,
                enough_rows=rows >= min_rows,
            )
        )
    results.sort(key=lambda result: (-result.rows, result.value))
    return results


def _slice_labels(values: pd.Series) -> pd.Series:
    """The values as strings, missing ones as ``"(missing)"``."""
    column = values.reset_index(drop=True)
    if pd.api.types.is_float_dtype(column):
        present = column.dropna().to_numpy(dtype=float)
        # An integer column with a gap is read as float; show 3, not 3.0.
        if len(present) and np.all(np.isfinite(present)) and np.all(present == np.round(present)):
            column = column.astype("Int64")
    return column.astype("string").fillna(MISSING_VALUE)
