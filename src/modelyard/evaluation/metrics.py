"""Metrics of one set of predictions, the dummy baseline, and how metric values compare.

Every metric comes from :mod:`sklearn.metrics`. A metric that is undefined on the rows it
is given (ROC AUC with one class present, R² of one row, MAPE with a zero target...) is
``nan`` rather than an exception, so a small slice never stops an evaluation; gates treat
``nan`` as a failure.

Example:
    >>> import numpy as np
    >>> compute_metrics("regression", ["mae", "rmse"], np.array([1.0, 3.0]), np.array([2.0, 2.0]))
    {'mae': 1.0, 'rmse': 1.0}
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.exceptions import UndefinedMetricWarning

from modelyard.errors import DataError, SpecError

__all__ = [
    "baseline_predictions",
    "compute_metrics",
    "format_pair",
    "format_value",
    "is_better",
    "same_label",
]

logger = logging.getLogger(__name__)

_TASKS = ("regression", "binary", "multiclass")
_BINARY_ONLY = frozenset({"f1", "precision", "recall", "brier"})


class _NotComputable(Exception):
    """A metric is undefined on these rows; the message says why."""


@dataclass(frozen=True)
class _Rows:
    task: str
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    classes: list[Any]
    positive_at: int = 1  # the column of the positive class of a binary task

    @property
    def positive(self) -> Any:
        return self.classes[self.positive_at]

    def need_proba(self, metric: str) -> np.ndarray:
        if self.proba is None:
            raise _NotComputable(f"{metric} needs class probabilities and none were given")
        return self.proba


# -- regression ---------------------------------------------------------------------


def _r2(rows: _Rows) -> float:
    if len(rows.y_true) < 2 or np.all(rows.y_true == rows.y_true[0]):
        raise _NotComputable("r2 needs at least two different target values")
    return float(skm.r2_score(rows.y_true, rows.y_pred))


def _mape(rows: _Rows) -> float:
    # sklearn divides by max(|y|, eps) and returns ~1e15 when a target is 0; such a
    # number means nothing, so MAPE is reported as undefined instead.
    if np.any(rows.y_true == 0):
        raise _NotComputable("mape is undefined when a target value is 0")
    return float(skm.mean_absolute_percentage_error(rows.y_true, rows.y_pred))


_REGRESSION: dict[str, Callable[[_Rows], float]] = {
    "rmse": lambda r: float(skm.root_mean_squared_error(r.y_true, r.y_pred)),
    "mae": lambda r: float(skm.mean_absolute_error(r.y_true, r.y_pred)),
    "r2": _r2,
    "mape": _mape,
    "median_ae": lambda r: float(skm.median_absolute_error(r.y_true, r.y_pred)),
}


# -- classification -----------------------------------------------------------------


def _roc_auc(rows: _Rows) -> float:
    proba = rows.need_proba("roc_auc")
    present = set(np.unique(rows.y_true).tolist())
    if rows.task == "binary":
        if len(present) < 2:
            raise _NotComputable("roc_auc needs both classes among the true labels")
        return float(skm.roc_auc_score(rows.y_true == rows.positive, proba[:, rows.positive_at]))
    if not set(rows.classes) <= present:
        raise _NotComputable("multiclass roc_auc (one-vs-rest) needs every class present")
    return float(
        skm.roc_auc_score(
            rows.y_true, proba, multi_class="ovr", average="macro", labels=rows.classes
        )
    )


def _brier(rows: _Rows) -> float:
    proba = rows.need_proba("brier")
    positive = proba[:, rows.positive_at]
    return float(skm.brier_score_loss((rows.y_true == rows.positive).astype(int), positive))


def _binary_score(score: Callable[..., Any]) -> Callable[[_Rows], float]:
    def compute(rows: _Rows) -> float:
        # zero_division=nan: precision with no predicted positive is undefined, not 0.
        return float(score(rows.y_true, rows.y_pred, pos_label=rows.positive, zero_division=np.nan))

    return compute


_CLASSIFICATION: dict[str, Callable[[_Rows], float]] = {
    "roc_auc": _roc_auc,
    "accuracy": lambda r: float(skm.accuracy_score(r.y_true, r.y_pred)),
    "balanced_accuracy": lambda r: float(skm.balanced_accuracy_score(r.y_true, r.y_pred)),
    "f1": _binary_score(skm.f1_score),
    "f1_macro": lambda r: float(
        skm.f1_score(r.y_true, r.y_pred, labels=r.classes, average="macro", zero_division=np.nan)
    ),
    "precision": _binary_score(skm.precision_score),
    "recall": _binary_score(skm.recall_score),
    "log_loss": lambda r: float(skm.log_loss(r.y_true, r.need_proba("log_loss"), labels=r.classes)),
    "brier": _brier,
}


def compute_metrics(
    task: str,
    metrics: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: list[Any] | None = None,
    *,
    positive: Any = None,
) -> dict[str, float]:
    """Compute ``metrics`` of predictions ``y_pred`` against ``y_true``.

    Args:
        task: ``regression``, ``binary`` or ``multiclass``.
        metrics: metric names from :data:`~modelyard.spec.REGRESSION_METRICS` or
            :data:`~modelyard.spec.CLASSIFICATION_METRICS`.
        y_true: the true targets, one per row.
        y_pred: the predicted values (regression) or labels (classification).
        proba: class probabilities, shape ``(rows, len(classes))`` in the order of
            ``classes`` (as ``predict_proba`` gives them); for binary, a 1-d array of the
            positive class's probability is accepted too. Needed by ``roc_auc``,
            ``log_loss`` and ``brier``; without it they are ``nan``.
        classes: the model's classes (``model.classes_``); ``classes[1]`` is the positive
            class of a binary task. Defaults to the sorted labels found in the rows, which
            is only right when every class is present: pass it for slices.
        positive: the positive class of a binary task (``spec.positive_class``), which
            f1, precision, recall, ROC AUC and brier are about; ``None`` keeps
            ``classes[1]``. Matched by value or by its text (``1`` and ``"1"``).

    Returns:
        ``{metric: value}`` in the order asked, values plain floats; ``nan`` where the
        metric is undefined on these rows.

    Raises:
        SpecError: an unknown task or metric, or a binary-only metric for a multiclass task.
        DataError: the arrays do not have one entry per row, or ``proba`` does not match
            ``classes``.

    Example:
        >>> y_true = np.array(["no", "yes", "yes", "no"])
        >>> y_pred = np.array(["no", "yes", "no", "no"])
        >>> compute_metrics("binary", ["accuracy", "recall"], y_true, y_pred)
        {'accuracy': 0.75, 'recall': 0.5}
    """
    table = _metric_table(task)
    for name in metrics:
        _check_metric(task, name, table)
    rows = _prepare(task, y_true, y_pred, proba, classes)
    if positive is not None and task == "binary":
        rows = _with_positive(rows, positive)
    values: dict[str, float] = {}
    for name in metrics:
        values[name] = _compute_one(name, table[name], rows)
    return values


def _metric_table(task: str) -> dict[str, Callable[[_Rows], float]]:
    if task not in _TASKS:
        raise SpecError(f"unknown task {task!r}; expected one of {', '.join(_TASKS)}")
    return _REGRESSION if task == "regression" else _CLASSIFICATION


def _check_metric(task: str, name: str, table: dict[str, Callable[[_Rows], float]]) -> None:
    if name not in table:
        raise SpecError(
            f"metric {name!r} does not apply to task {task!r}; "
            f"expected one of {', '.join(sorted(table))}"
        )
    if task == "multiclass" and name in _BINARY_ONLY:
        raise SpecError(f"metric {name!r} is for binary tasks; use e.g. 'f1_macro' for multiclass")


def _prepare(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any] | None,
) -> _Rows:
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    if truth.ndim != 1 or pred.ndim != 1 or len(truth) != len(pred):
        raise DataError(
            f"y_true has shape {truth.shape} and y_pred {pred.shape}; "
            "expected two 1-d arrays with one entry per evaluation row"
        )
    if task == "regression":
        try:
            truth, pred = truth.astype(float), pred.astype(float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"regression targets and predictions must be numeric: {exc}") from None
        return _Rows(task, truth, pred, None, [])
    labels = list(classes) if classes is not None else _found_labels(truth, pred)
    if task == "binary" and len(labels) != 2:
        raise DataError(
            f"a binary task needs exactly 2 classes, got {labels!r}; "
            "pass classes=model.classes_ when a slice holds only one class"
        )
    probabilities = None
    if proba is not None:
        probabilities = np.asarray(proba, dtype=float)
        if probabilities.ndim == 1 and task == "binary":
            probabilities = np.column_stack([1.0 - probabilities, probabilities])
        if probabilities.ndim != 2 or probabilities.shape != (len(truth), len(labels)):
            raise DataError(
                f"proba has shape {probabilities.shape}; expected ({len(truth)}, {len(labels)}): "
                f"one row per evaluation row and one column per class of {labels!r}"
            )
    return _Rows(task, truth, pred, probabilities, labels)


def same_label(label: Any, wanted: Any) -> bool:
    """Whether a class label is the one a spec names (``1`` and ``"1"`` are the same).

    Example:
        >>> same_label(1, "1"), same_label("yes", "yes"), same_label(True, "no")
        (True, True, False)
    """
    if isinstance(label, np.generic):
        label = label.item()
    return bool(label == wanted) or str(label).lower() == str(wanted).lower()


def _with_positive(rows: _Rows, positive: Any) -> _Rows:
    """Point the binary metrics at the positive class (classes keep their order,
    which log loss relies on)."""
    first, second = rows.classes
    if same_label(second, positive) or not same_label(first, positive):
        return rows
    return dataclasses.replace(rows, positive_at=0)


def _found_labels(truth: np.ndarray, pred: np.ndarray) -> list[Any]:
    try:
        return list(np.unique(np.concatenate([truth, pred])).tolist())
    except TypeError as exc:  # e.g. None next to strings: no order to sort them by
        raise DataError(
            f"cannot sort the class labels found in the rows ({exc}); pass classes=model.classes_"
        ) from None


def _compute_one(name: str, compute: Callable[[_Rows], float], rows: _Rows) -> float:
    if len(rows.y_true) == 0:
        return math.nan
    try:
        with warnings.catch_warnings():
            # Undefined cases are reported as nan on purpose; sklearn's warnings about
            # them would repeat for every small slice.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            return compute(rows)
    except _NotComputable as exc:
        logger.debug("metric %s is nan on %d rows: %s", name, len(rows.y_true), exc)
    except ValueError as exc:  # sklearn's way of saying "not on these inputs"
        logger.debug("metric %s is nan on %d rows: sklearn says %s", name, len(rows.y_true), exc)
    return math.nan


# -- baseline and comparison ----------------------------------------------------------


def baseline_predictions(
    task: str, y_train: np.ndarray, n: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray | None, list[Any] | None]:
    """Predictions of the dummy baseline a model has to beat, for ``n`` rows.

    Regression predicts the training mean (``DummyRegressor(strategy="mean")``);
    classification the training class prior (``DummyClassifier(strategy="prior")``):
    the most frequent class as label, the class shares as probabilities.

    Args:
        task: ``regression``, ``binary`` or ``multiclass``.
        y_train: the training targets.
        n: how many rows to predict (the number of evaluation rows).
        seed: the project seed, given to the classifier's ``random_state``.

    Returns:
        ``(values, proba, classes)``; ``proba`` and ``classes`` are ``None`` for regression.

    Raises:
        SpecError: an unknown task.
        DataError: ``y_train`` is empty or ``n`` is negative.

    Example:
        >>> y_train = np.array([0, 1, 1, 1])
        >>> values, proba, classes = baseline_predictions("binary", y_train, 2, seed=0)
        >>> values.tolist(), proba.tolist(), classes
        ([1, 1], [[0.25, 0.75], [0.25, 0.75]], [0, 1])
    """
    _metric_table(task)
    target = np.asarray(y_train)
    if len(target) == 0:
        raise DataError("cannot fit the baseline: there are no training rows")
    if n < 0:
        raise DataError(f"cannot predict {n} rows; expected n >= 0")
    features_train, features_eval = np.zeros((len(target), 1)), np.zeros((n, 1))
    if task == "regression":
        regressor = DummyRegressor(strategy="mean").fit(features_train, target.astype(float))
        return np.asarray(regressor.predict(features_eval)), None, None
    classifier = DummyClassifier(strategy="prior", random_state=seed).fit(features_train, target)
    values = np.asarray(classifier.predict(features_eval))
    proba = np.asarray(classifier.predict_proba(features_eval), dtype=float)
    return values, proba, list(classifier.classes_.tolist())


def is_better(metric: str, candidate: float, reference: float, *, higher_is_better: bool) -> bool:
    """Whether ``candidate`` is strictly better than ``reference`` for ``metric``.

    ``nan`` on either side is never better: an undefined metric proves nothing.

    Example:
        >>> is_better("rmse", 10.0, 12.0, higher_is_better=False)
        True
    """
    if math.isnan(candidate) or math.isnan(reference):
        return False
    return candidate > reference if higher_is_better else candidate < reference


def format_value(value: float, digits: int = 4) -> str:
    """A metric value for people: thousands separated, about ``digits`` significant digits.

    Example:
        >>> format_value(23456.78), format_value(0.873456), format_value(float("nan"))
        ('23,457', '0.8735', 'nan')
    """
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1:
        whole_digits = math.floor(math.log10(abs(value))) + 1
        text = f"{value:,.{max(0, digits - whole_digits)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.{digits}g}"


def format_pair(first: float, second: float) -> tuple[str, str]:
    """Format two values with enough digits that different values never look the same."""
    for digits in range(4, 13):
        left, right = format_value(first, digits), format_value(second, digits)
        if left != right or first == second:
            return left, right
    return repr(first), repr(second)
