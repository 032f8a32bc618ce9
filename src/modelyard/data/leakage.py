"""Find features that leak the target: too good to be available when predicting.

A leak makes a model look excellent in evaluation and fail in use. Four signs, each
reported as a :class:`Leak` with its evidence and the fix (``features.drop``):

- ``predicts_target``: the feature alone predicts the target almost perfectly
  (a shallow decision tree on that one feature, scored on held-out training rows:
  R² >= 0.95 for regression; for classification an error rate at most a tenth of the
  class prior's), like a noisy copy of the target;
- ``derived_from_target``: the target alone predicts the feature almost perfectly (the
  same tree, the other way round), like a band or flag computed from the outcome;
- ``target_ratio``: the product or ratio of two positive numeric features reproduces a
  positive numeric target (correlation of logs >= 0.995), like ``volume`` next to a
  ``sales`` target, or ``price_per_sqft`` next to ``sqft``;
- ``identifier``: the values are identifiers (nearly all distinct text, or dense
  distinct whole numbers), which a model can only memorise.

The checks are cheap on purpose (one small tree per column, on at most
:data:`SAMPLE_ROWS` rows); they flag candidates for a person to judge, not proofs.

Example:
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.normal(size=400)})
    >>> frame["y"] = 3 * frame["x"] + rng.normal(size=400)
    >>> frame["y_copy"] = frame["y"] + rng.normal(scale=0.05, size=400)
    >>> [leak.column for leak in find_leaks(frame, target="y", task="regression",
    ...                                     features=["x", "y_copy"], seed=0)]
    ['y_copy']
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_integer_dtype,
    is_numeric_dtype,
    is_string_dtype,
)
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from modelyard.data.timeorder import looks_like_dates

__all__ = ["SAMPLE_ROWS", "Leak", "LeakKind", "find_leaks"]

SAMPLE_ROWS = 20_000
LeakKind = Literal["predicts_target", "derived_from_target", "target_ratio", "identifier"]

_MIN_ROWS = 30
_R2_LEAK = 0.95
_ERROR_SHARE_LEAK = 0.1
_MIN_PRIOR_ERROR = 0.02
_LOG_CORRELATION_LEAK = 0.995
_ID_UNIQUE_SHARE = 0.95
_ID_DENSITY = 1.5
_ID_MIN_ROWS = 100
_MAX_PAIR_COLUMNS = 60
_ID_NAME_RE = re.compile(r"^(?:[Ii][Dd]|.*[_.\s-](?:id|ID|Id)|.*[a-z0-9]Id|[A-Z]{1,4}ID)$")


@dataclass(frozen=True)
class Leak:
    """One suspect feature: what kind of leak, the numbers behind it, and the fix."""

    column: str
    kind: LeakKind
    evidence: str

    @property
    def fix(self) -> str:
        """What to do about it."""
        return f"add {self.column!r} to features.drop (or mark it serving: false)"

    def describe(self) -> str:
        """One line for people: column, evidence, fix."""
        return f"{self.column!r}: {self.evidence}; {self.fix}"


def find_leaks(
    df: pd.DataFrame,
    *,
    target: str,
    task: str,
    features: list[str],
    seed: int,
) -> list[Leak]:
    """Check each of ``features`` for signs of target leakage, on the rows of ``df``.

    Args:
        df: training rows (target included); at most :data:`SAMPLE_ROWS` are used.
        target: the target column.
        task: ``regression``, ``binary`` or ``multiclass``.
        features: the columns the model would use.
        seed: for the sample and the held-out rows.

    Returns:
        At most one :class:`Leak` per column (the strongest sign), in ``features`` order.
    """
    rows = df[df[target].notna()]
    if len(rows) < _MIN_ROWS:
        return []
    if len(rows) > SAMPLE_ROWS:
        rows = rows.sample(SAMPLE_ROWS, random_state=seed)
    y = rows[target]
    found: dict[str, Leak] = {}
    for column in features:
        if column not in rows.columns or column == target:
            continue
        leak = _identifier(column, rows[column]) or _single_feature(
            column, rows[column], y, task=task, seed=seed
        )
        if leak is not None:
            found[column] = leak
    if task == "regression":
        for leak in _ratios(rows, y, [c for c in features if c not in found and c != target]):
            found.setdefault(leak.column, leak)
    return [found[column] for column in features if column in found]


def _identifier(column: str, values: pd.Series) -> Leak | None:
    present = values.dropna()
    if len(present) < _ID_MIN_ROWS or is_bool_dtype(values.dtype):
        return None  # in a small table, distinct measurements look like ids
    distinct = present.nunique()
    share = distinct / len(present)
    if share < _ID_UNIQUE_SHARE:
        return None
    # Text in an object column (pandas 2) or a string column (pandas 3's default dtype);
    # distinct dates and times are measurements, not identifiers.
    textual = (values.dtype == object or is_string_dtype(values.dtype)) and not (
        is_numeric_dtype(present.infer_objects().dtype)
        or is_datetime64_any_dtype(present.infer_objects().dtype)
        or looks_like_dates(present)
    )
    if textual:
        return Leak(column, "identifier", f"{share:.0%} of its text values are distinct")
    if is_integer_dtype(present.dtype) or (
        is_numeric_dtype(present.dtype)
        and bool(np.all(np.floor(present.to_numpy(dtype=float)) == present.to_numpy(dtype=float)))
    ):
        numbers = present.to_numpy(dtype=float)
        span = float(numbers.max() - numbers.min()) + 1
        dense = span <= _ID_DENSITY * distinct
        if dense or _ID_NAME_RE.match(column):
            return Leak(
                column,
                "identifier",
                f"{share:.0%} of its values are distinct whole numbers"
                + (f" packed in {span:,.0f} consecutive values" if dense else ""),
            )
    return None


def _encode(values: pd.Series) -> np.ndarray:
    if is_numeric_dtype(values.dtype) and not is_bool_dtype(values.dtype):
        # Trees split missing values (nan) on their own; infinities are clipped away.
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        limit = float(np.finfo(np.float32).max) / 2
        clipped: np.ndarray = np.clip(numbers, -limit, limit).reshape(-1, 1)
        return clipped
    codes, _ = pd.factorize(values.astype(str).where(values.notna(), None), sort=True)
    return codes.astype(float).reshape(-1, 1)


def _is_categorical(values: pd.Series) -> bool:
    return not is_numeric_dtype(values.dtype) or is_bool_dtype(values.dtype)


def _single_feature(
    column: str, values: pd.Series, y: pd.Series, *, task: str, seed: int
) -> Leak | None:
    if values.nunique() < 2:
        return None
    # Forward: the feature predicts the target. Backward (for a class target, or a
    # categorical feature): the target predicts the feature, as a flag derived from it.
    directions: list[tuple[LeakKind, np.ndarray, pd.Series, bool, str]] = [
        (
            "predicts_target",
            _encode(values),
            y,
            task != "regression",
            "alone it predicts the target",
        )
    ]
    if task != "regression" or _is_categorical(values):
        directions.append(
            (
                "derived_from_target",
                _encode(y),
                values,
                _is_categorical(values),
                "the target alone predicts it",
            )
        )
    for kind, x, outcome, classify, text in directions:
        scored = _fit_score(x, outcome, classify=classify, seed=seed)
        if scored is not None and scored[1] >= scored[2]:
            return Leak(column, kind, f"{text} with {scored[0]} {scored[1]:.3f} on held-out rows")
    return None


def _fit_score(
    x: np.ndarray, y: pd.Series, *, classify: bool, seed: int
) -> tuple[str, float, float] | None:
    """Held-out score of a small tree ``x -> y``, and the score that counts as a leak."""
    keep = y.notna().to_numpy()
    x, target = x[keep], y[keep]
    if len(target) < _MIN_ROWS or target.nunique() < 2:
        return None
    labels = target.astype(str).to_numpy() if classify else target.to_numpy(dtype=float)
    x_fit, x_test, y_fit, y_test = train_test_split(x, labels, test_size=0.3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if classify:
            tree = DecisionTreeClassifier(max_leaf_nodes=64, min_samples_leaf=5, random_state=seed)
            tree.fit(x_fit, y_fit)
            error = float(np.mean(tree.predict(x_test) != y_test))
            _, counts = np.unique(y_fit, return_counts=True)
            prior_error = 1.0 - counts.max() / counts.sum()
            if prior_error < _MIN_PRIOR_ERROR:
                return None
            # Expressed as accuracy, with the leak threshold derived from the prior.
            return "accuracy", 1.0 - error, 1.0 - _ERROR_SHARE_LEAK * prior_error
        tree_r = DecisionTreeRegressor(max_leaf_nodes=64, min_samples_leaf=5, random_state=seed)
        tree_r.fit(x_fit, y_fit)
        residual = float(np.sum((tree_r.predict(x_test) - y_test) ** 2))
        total = float(np.sum((y_test - y_test.mean()) ** 2))
        if total == 0:
            return None
        return "R²", 1.0 - residual / total, _R2_LEAK


def _ratios(rows: pd.DataFrame, y: pd.Series, features: list[str]) -> list[Leak]:
    target = y.to_numpy(dtype=float)
    if not np.all(target > 0):
        return []
    positive = [
        c
        for c in features
        if is_numeric_dtype(rows[c].dtype)
        and not is_bool_dtype(rows[c].dtype)
        and rows[c].notna().all()
        and bool((rows[c] > 0).all())
        and rows[c].nunique() > 2
    ][:_MAX_PAIR_COLUMNS]
    if len(positive) < 2:
        return []
    logs = {c: np.log(rows[c].to_numpy(dtype=float)) for c in positive}
    log_target = np.log(target)
    found = []
    for first, second in itertools.combinations(positive, 2):
        for sign, word in ((1.0, "×"), (-1.0, "/")):
            combined = logs[first] + sign * logs[second]
            if np.std(combined) == 0:
                continue
            correlation = float(np.corrcoef(combined, log_target)[0, 1])
            if abs(correlation) >= _LOG_CORRELATION_LEAK:
                if sign < 0:
                    # target ~ a / b: the numerator is the target times b (volume next
                    # to sales, with an average price).
                    suspect = first if correlation > 0 else second
                else:
                    # target ~ a * b: the factor derived from the target is the one less
                    # related to it on its own (price_per_m2 next to the plain area).
                    single = {
                        c: abs(float(np.corrcoef(logs[c], log_target)[0, 1]))
                        for c in (first, second)
                    }
                    suspect = min(single, key=lambda c: single[c])
                found.append(
                    Leak(
                        suspect,
                        "target_ratio",
                        f"{first} {word} {second} reproduces the target "
                        f"(correlation of logs {correlation:.4f})",
                    )
                )
    return found
