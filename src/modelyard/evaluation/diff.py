"""The differential test: how two versions' predictions on the same rows differ.

Before a candidate replaces the version in production, both score the same evaluation
rows. The diff counts the rows whose prediction moved by more than a tolerance, describes
the size of the moves, and lists the rows that moved most, with their ids, so a person can
look at them.

Example:
    >>> import numpy as np
    >>> diff = diff_predictions(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 3.0]),
    ...                         task="regression", atol=0.1)
    >>> diff.changed, diff.top_rows[0].position, diff.top_rows[0].change
    (1, 1, 0.5)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from modelyard.errors import DataError, SpecError

__all__ = ["ChangeStats", "DiffRow", "LabelTransition", "PredictionDiff", "diff_predictions"]

Label = bool | int | float | str
_QUANTILES = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class ChangeStats(_Frozen):
    """The distribution of per-row changes over all rows (both sides present).

    For regression, ``mean`` to ``max`` describe the signed change ``new - old`` and the
    quantiles its absolute value; for classification all describe the largest move of any
    class probability in the row.
    """

    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float]


class LabelTransition(_Frozen):
    """How many rows went from label ``old`` to label ``new``."""

    old: Label | None
    new: Label | None
    count: int


class DiffRow(_Frozen):
    """One changed row: its position in the evaluation rows, its ids, and both predictions.

    ``change`` is ``new - old`` for regression; for classification the largest move of a
    class probability (``1.0`` when only labels are known and the label changed).
    """

    position: int
    ids: dict[str, Any] | None = None
    old: Label | None
    new: Label | None
    change: float


class PredictionDiff(_Frozen):
    """The differential test between two versions on the same rows.

    Attributes:
        task: the task of both versions.
        rows: how many rows both scored.
        atol: the tolerance: a change of at most ``atol`` is no change.
        changed: rows whose prediction changed beyond ``atol`` (classification: the
            label changed, or a class probability moved more than ``atol``).
        changed_share: ``changed / rows`` (0 when there are no rows).
        change: the distribution of changes; ``None`` without rows (or, for
            classification, without probabilities).
        labels_changed: classification only: rows whose label changed.
        transitions: classification only: counts of ``old -> new`` label changes, the most
            frequent first.
        top_rows: the rows that changed most, at most ``top`` of them.
    """

    task: str
    rows: int
    atol: float
    changed: int
    changed_share: float
    change: ChangeStats | None = None
    labels_changed: int | None = None
    transitions: list[LabelTransition] | None = None
    top_rows: list[DiffRow]


def diff_predictions(
    old: np.ndarray,
    new: np.ndarray,
    *,
    task: str,
    atol: float,
    ids: pd.DataFrame | None = None,
    old_proba: np.ndarray | None = None,
    new_proba: np.ndarray | None = None,
    top: int = 10,
) -> PredictionDiff:
    """Compare two versions' predictions on the same rows.

    Args:
        old: the reference version's predictions (usually the one in production).
        new: the candidate's predictions on the same rows, in the same order.
        task: ``regression``, ``binary`` or ``multiclass``.
        atol: changes of at most this much are not changes (``evaluation.diff_tolerance``).
        ids: the id columns of the rows, in the same order, to name the top rows.
        old_proba: the reference version's class probabilities (classification).
        new_proba: the candidate's class probabilities, same classes in the same order.
        top: how many of the most changed rows to list.

    Returns:
        A :class:`PredictionDiff`.

    Raises:
        SpecError: an unknown task.
        DataError: the arrays (or ``ids``) do not have one entry per row, or only one side
            has probabilities, or the probabilities have different shapes.
    """
    old_values, new_values = np.asarray(old), np.asarray(new)
    if old_values.ndim != 1 or old_values.shape != new_values.shape:
        raise DataError(
            f"cannot diff predictions of shapes {old_values.shape} and {new_values.shape}; "
            "both versions must score the same rows, one prediction per row"
        )
    rows = len(old_values)
    if ids is not None and len(ids) != rows:
        raise DataError(f"ids has {len(ids)} rows for {rows} predictions; pass the same rows")
    if task not in ("regression", "binary", "multiclass"):
        raise SpecError(f"unknown task {task!r}; expected regression, binary or multiclass")
    if atol < 0:
        raise DataError(f"atol must be >= 0, got {atol}")
    if task == "regression":
        parts = _regression(old_values, new_values, atol)
    else:
        parts = _classification(old_values, new_values, atol, old_proba, new_proba)
    changed_mask, score, changes, extra = parts
    changed = int(changed_mask.sum())
    order = np.lexsort((np.arange(rows), -score))  # most changed first, ties by position
    top_positions = [int(p) for p in order if changed_mask[p]][: max(top, 0)]
    return PredictionDiff(
        task=task,
        rows=rows,
        atol=atol,
        changed=changed,
        changed_share=changed / rows if rows else 0.0,
        top_rows=[
            DiffRow(
                position=position,
                ids=_ids_of(ids, position),
                old=_plain(old_values[position]),
                new=_plain(new_values[position]),
                change=float(changes[position]),
            )
            for position in top_positions
        ],
        **extra,
    )


_Parts = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


def _regression(old: np.ndarray, new: np.ndarray, atol: float) -> _Parts:
    try:
        old_f, new_f = old.astype(float), new.astype(float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"regression predictions must be numeric: {exc}") from None
    # rtol=0: the tolerance is absolute; a missing prediction on both sides is no change.
    changed = ~np.isclose(old_f, new_f, rtol=0.0, atol=atol, equal_nan=True)
    signed = new_f - old_f
    # A prediction that appears or disappears (nan on one side) ranks above any number.
    score = np.where(np.isnan(signed), np.inf, np.abs(signed))
    score = np.where(changed, score, -1.0)
    finite = signed[np.isfinite(signed)]
    stats = None
    if len(finite):
        stats = ChangeStats(
            mean=float(finite.mean()),
            std=float(finite.std()),
            min=float(finite.min()),
            max=float(finite.max()),
            quantiles=_quantiles(np.abs(finite)),
        )
    return changed, score, signed, {"change": stats}


def _classification(
    old: np.ndarray,
    new: np.ndarray,
    atol: float,
    old_proba: np.ndarray | None,
    new_proba: np.ndarray | None,
) -> _Parts:
    # pandas treats two missing labels as different; they are the same (no prediction).
    both_missing = pd.isna(old) & pd.isna(new)
    label_changed = pd.Series(old).ne(pd.Series(new)).to_numpy(dtype=bool) & ~both_missing
    if (old_proba is None) != (new_proba is None):
        raise DataError("give both old_proba and new_proba, or neither")
    stats = None
    if old_proba is not None and new_proba is not None:
        old_p, new_p = np.asarray(old_proba, dtype=float), np.asarray(new_proba, dtype=float)
        if old_p.shape != new_p.shape or old_p.ndim != 2 or len(old_p) != len(old):
            raise DataError(
                f"probabilities of shapes {old_p.shape} and {new_p.shape} cannot be compared "
                f"for {len(old)} rows; both versions need the same classes in the same order"
            )
        moved = np.abs(new_p - old_p).max(axis=1) if old_p.shape[1] else np.zeros(len(old))
        changed = label_changed | (moved > atol)
        if len(moved):
            stats = ChangeStats(
                mean=float(moved.mean()),
                std=float(moved.std()),
                min=float(moved.min()),
                max=float(moved.max()),
                quantiles=_quantiles(moved),
            )
    else:
        moved = label_changed.astype(float)
        changed = label_changed
    # A label change outranks any probability move, then the larger move first.
    score = np.where(changed, label_changed * 2.0 + moved, -1.0)
    extra = {
        "change": stats,
        "labels_changed": int(label_changed.sum()),
        "transitions": _transitions(old[label_changed], new[label_changed]),
    }
    return changed, score, moved, extra


def _quantiles(values: np.ndarray) -> dict[str, float]:
    points = np.quantile(values, list(_QUANTILES.values()))
    return {name: float(point) for name, point in zip(_QUANTILES, points, strict=True)}


def _transitions(old: np.ndarray, new: np.ndarray) -> list[LabelTransition]:
    if len(old) == 0:
        return []
    pairs = pd.DataFrame({"old": old, "new": new}).value_counts(dropna=False, sort=False)
    found = [
        LabelTransition(old=_plain(pair[0]), new=_plain(pair[1]), count=int(count))
        for pair, count in zip(pairs.index.to_list(), pairs.to_list(), strict=True)
    ]
    return sorted(found, key=lambda t: (-t.count, str(t.old), str(t.new)))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can hold; missing values as ``None``."""
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _ids_of(ids: pd.DataFrame | None, position: int) -> dict[str, Any] | None:
    if ids is None:
        return None
    # pandas' own JSON conversion turns timestamps, numpy scalars and NA into JSON values.
    record: dict[str, Any] = json.loads(
        ids.iloc[[position]].to_json(orient="records", date_format="iso")
    )[0]
    return record
