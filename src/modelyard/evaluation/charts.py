"""What the report's charts show, computed from predictions: plain data, kept with the report.

:func:`chart_data` turns one set of predictions into :class:`Charts`: predicted against
actual and residuals for regression; the confusion matrix for classifiers, and for a
binary classifier with probabilities the ROC and precision-recall curves and the
calibration bins. :func:`permutation_importance` measures how much the primary metric
worsens when one input column is shuffled. The curves come from :mod:`sklearn.metrics`
and :mod:`sklearn.calibration`; the text report prints them as tables and
:mod:`modelyard.evaluation.plots` draws them.

Everything is sized for storage with the version: at most :data:`MAX_POINTS` scatter
points (a seeded sample) and :data:`MAX_CURVE_POINTS` points per curve.

Example:
    >>> import numpy as np
    >>> charts = chart_data("regression", np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]))
    >>> charts.regression.residuals
    [0.5, 0.0, -1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from modelyard.evaluation.metrics import compute_metrics, same_label

__all__ = [
    "MAX_CURVE_POINTS",
    "MAX_POINTS",
    "Calibration",
    "Charts",
    "ClassificationCharts",
    "Curve",
    "Importance",
    "RegressionCharts",
    "chart_data",
    "permutation_importance",
]

#: Scatter points kept (a seeded sample of the evaluation rows beyond this).
MAX_POINTS = 500
#: Points kept per curve (evenly spaced along it, ends included).
MAX_CURVE_POINTS = 120
_CALIBRATION_BINS = 10
_PROBA_METRICS = frozenset({"roc_auc", "log_loss", "brier"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class Curve(_Frozen):
    """A curve (ROC: x false positive rate, y true positive rate; PR: x recall, y
    precision), its area, and the point of the decision threshold in use."""

    x: list[float]
    y: list[float]
    area: float
    at_threshold: tuple[float, float] | None = None


class Calibration(_Frozen):
    """Calibration bins: mean predicted probability against the observed share."""

    predicted: list[float]
    observed: list[float]
    rows: list[int]


class Importance(_Frozen):
    """How much ``metric`` worsens when each input column is shuffled (mean, std over
    ``repeats`` shuffles of ``rows`` rows); largest first."""

    metric: str
    repeats: int
    rows: int
    columns: list[str]
    mean: list[float]
    std: list[float]


class RegressionCharts(_Frozen):
    """Predicted against actual (a sample of rows) and the residual quantiles."""

    actual: list[float]
    predicted: list[float]
    residuals: list[float]  # predicted - actual, of the same rows
    residual_quantiles: dict[str, float]
    sampled_from: int


class ClassificationCharts(_Frozen):
    """The confusion matrix (rows: true class, columns: predicted); for a binary
    classifier with probabilities, ROC, precision-recall and calibration of the
    positive class."""

    labels: list[str]
    confusion: list[list[int]]
    positive_class: str | None = None
    threshold: float | None = None
    roc: Curve | None = None
    pr: Curve | None = None
    calibration: Calibration | None = None


class Charts(_Frozen):
    """Everything the report draws."""

    regression: RegressionCharts | None = None
    classification: ClassificationCharts | None = None
    importance: Importance | None = None


def chart_data(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: list[Any] | None = None,
    *,
    positive: Any = None,
    threshold: float | None = None,
    seed: int = 0,
) -> Charts:
    """The chart data of one set of predictions on labelled rows.

    Args:
        task: ``regression``, ``binary`` or ``multiclass``.
        y_true: the true targets.
        y_pred: the predicted values or labels.
        proba: class probabilities (rows x classes, in the order of ``classes``).
        classes: the model's classes.
        positive: the positive class of a binary task (default ``classes[1]``).
        threshold: the decision threshold in use (default 0.5), marked on the curves.
        seed: seeds the sample of scatter points.
    """
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    if task == "regression":
        return Charts(regression=_regression(truth.astype(float), predicted.astype(float), seed))
    labels = list(classes) if classes is not None else sorted(set(truth.tolist()))
    confusion = skm.confusion_matrix(truth, predicted, labels=labels)
    charts = ClassificationCharts(
        labels=[str(label) for label in labels], confusion=confusion.tolist()
    )
    if task == "binary" and proba is not None and len(labels) == 2:
        at = 1 if positive is None or not same_label(labels[0], positive) else 0
        if positive is not None and same_label(labels[1], positive):
            at = 1
        charts = _binary(charts, truth == labels[at], np.asarray(proba)[:, at], threshold)
        charts = charts.model_copy(update={"positive_class": str(labels[at])})
    return Charts(classification=charts)


def _regression(truth: np.ndarray, predicted: np.ndarray, seed: int) -> RegressionCharts:
    residuals = predicted - truth
    keep = np.arange(len(truth))
    if len(keep) > MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(truth), MAX_POINTS, replace=False))
    levels = {"p05": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}
    quantiles = (
        {name: float(np.percentile(residuals, level)) for name, level in levels.items()}
        if len(residuals)
        else {}
    )
    return RegressionCharts(
        actual=_floats(truth[keep]),
        predicted=_floats(predicted[keep]),
        residuals=_floats(residuals[keep]),
        residual_quantiles=quantiles,
        sampled_from=len(truth),
    )


def _binary(
    charts: ClassificationCharts,
    is_positive: np.ndarray,
    score: np.ndarray,
    threshold: float | None,
) -> ClassificationCharts:
    if is_positive.all() or not is_positive.any():
        return charts  # one class only: no curve is defined
    cut = 0.5 if threshold is None else threshold
    flagged = score >= cut
    tpr = float(flagged[is_positive].mean())
    fpr = float(flagged[~is_positive].mean())
    precision = float(is_positive[flagged].mean()) if flagged.any() else math.nan
    fpr_curve, tpr_curve, _ = skm.roc_curve(is_positive, score)
    precision_curve, recall_curve, _ = skm.precision_recall_curve(is_positive, score)
    observed, predicted = calibration_curve(
        is_positive, score, n_bins=_CALIBRATION_BINS, strategy="quantile"
    )
    # The rows per bin, binned as calibration_curve(strategy="quantile") bins them.
    edges = np.percentile(score, np.linspace(0, 100, _CALIBRATION_BINS + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], score), minlength=_CALIBRATION_BINS)
    return charts.model_copy(
        update={
            "threshold": cut,
            "roc": Curve(
                x=_thin(fpr_curve),
                y=_thin(tpr_curve),
                area=float(skm.roc_auc_score(is_positive, score)),
                at_threshold=(fpr, tpr),
            ),
            "pr": Curve(
                x=_thin(recall_curve),
                y=_thin(precision_curve),
                area=float(skm.average_precision_score(is_positive, score)),
                at_threshold=None if math.isnan(precision) else (tpr, precision),
            ),
            "calibration": Calibration(
                predicted=_floats(predicted),
                observed=_floats(observed),
                rows=[int(count) for count in counts if count > 0],
            ),
        }
    )


def permutation_importance(
    model: Any,
    rows: pd.DataFrame,
    y_true: np.ndarray,
    *,
    task: str,
    metric: str,
    higher_is_better: bool,
    positive: Any = None,
    repeats: int = 3,
    max_rows: int = 2_000,
    seed: int = 0,
) -> Importance:
    """Permutation importance of the input columns of ``rows`` for ``model``.

    Each column is shuffled ``repeats`` times (scikit-learn's
    :func:`~sklearn.inspection.permutation_importance`) and ``metric`` recomputed with
    :func:`compute_metrics`; the importance is how much worse it gets (positive: the
    model relies on the column). Beyond ``max_rows`` rows, a seeded sample is used.

    Args:
        model: anything with ``predict`` (and ``predict_proba`` for probability
            metrics) that takes ``rows``: the fitted pipeline.
        rows: the evaluation rows, input columns only.
        y_true: their targets.
        task: ``regression``, ``binary`` or ``multiclass``.
        metric: the metric to worsen (the primary metric).
        higher_is_better: whether a larger ``metric`` is better.
        positive: the positive class of a binary task.
        repeats: shuffles per column.
        max_rows: rows used at most.
        seed: seeds the shuffles and the sample.
    """
    from sklearn.inspection import permutation_importance as sklearn_importance

    truth = np.asarray(y_true)
    if len(rows) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        rows, truth = rows.iloc[keep], truth[keep]
    found = sklearn_importance(
        model,
        rows.reset_index(drop=True),
        truth,
        scoring=_scorer(task, metric, higher_is_better, positive),
        n_repeats=repeats,
        random_state=seed,
    )
    order = np.argsort(-np.nan_to_num(found.importances_mean, nan=-np.inf), kind="stable")
    columns = [str(column) for column in rows.columns]
    return Importance(
        metric=metric,
        repeats=repeats,
        rows=len(rows),
        columns=[columns[i] for i in order],
        mean=_floats(found.importances_mean[order]),
        std=_floats(found.importances_std[order]),
    )


def _scorer(
    task: str, metric: str, higher_is_better: bool, positive: Any
) -> Callable[[Any, pd.DataFrame, np.ndarray], float]:
    sign = 1.0 if higher_is_better else -1.0

    def score(model: Any, rows: pd.DataFrame, truth: np.ndarray) -> float:
        classes = list(model.classes_) if task != "regression" else None
        if metric in _PROBA_METRICS:
            proba = np.asarray(model.predict_proba(rows))
            # These metrics read only the probabilities; the labels just fill the slot.
            values = np.asarray(classes)[proba.argmax(axis=1)]
        else:
            proba, values = None, np.asarray(model.predict(rows))
        found = compute_metrics(task, [metric], truth, values, proba, classes, positive=positive)
        return sign * found[metric]

    return score


def _thin(values: np.ndarray) -> list[float]:
    if len(values) > MAX_CURVE_POINTS:
        values = values[np.linspace(0, len(values) - 1, MAX_CURVE_POINTS).round().astype(int)]
    return _floats(values)


def _floats(values: np.ndarray) -> list[float]:
    return [float(value) for value in np.asarray(values, dtype=float)]
