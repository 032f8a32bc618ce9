"""Performance before labels: confidence-based performance estimation (CBPE).

A calibrated classifier's probabilities say how often it is right: a row predicted
"churned" with probability 0.8 is wrong one time in five. So the class probabilities
logged with each prediction give a distribution of the labels still to come, and with it
of every metric (the method NannyML calls CBPE). This module draws that distribution:

1. the logged probabilities go through the version's calibration map (isotonic
   regression fitted on its evaluation rows, stored in the reference profile), since a
   model's raw scores are often not calibrated;
2. ``draws`` label vectors are drawn from them, each row's label independently;
3. each metric is computed on each draw, vectorised over the draws (the scores, ranks
   and confusion counts of all draws at once, no per-draw Python);
4. the estimate is the mean over the draws, the interval their 2.5th to 97.5th
   percentiles: where the realised metric falls if the calibration holds.

When labels arrive, the same estimate on the labelled rows is set beside the realised
metric, and ``realised_within`` says whether it fell inside the interval. It holds only
as long as the calibration does: a concept shift (the same inputs meaning other labels)
moves the realised metric and not the estimate, which is exactly what the labels show.

Hand-written rather than NannyML's: NannyML pins pandas < 3 (modelyard's lock has 3)
and estimates per chunk from its own reference frames; here the estimate works on the
window summaries' bounded samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from modelyard.monitoring.results import Estimate, EstimatedPerformance

__all__ = [
    "ESTIMATED_METRICS",
    "calibrate",
    "estimate_metrics",
    "fit_calibration",
    "positive_index",
    "probabilities",
]

#: The classification metrics CBPE estimates; others are left out of the estimate.
ESTIMATED_METRICS = frozenset(
    {
        "accuracy",
        "balanced_accuracy",
        "f1",
        "f1_macro",
        "precision",
        "recall",
        "roc_auc",
        "brier",
        "log_loss",
    }
)
_DRAWS = 400
_LOW, _HIGH = 2.5, 97.5
_CLIP = 1e-15  # as sklearn's log_loss clips


def fit_calibration(
    truth: Sequence[str], proba: np.ndarray, classes: list[str], *, positive_at: int
) -> dict[str, list[list[float]]]:
    """Isotonic calibration maps from evaluation rows: per class, [scores, probabilities].

    A binary model gets one map, for its positive class (the other is its complement);
    a multiclass model one per class (one-vs-rest; rows are renormalised after).
    Kept as the fitted step function's points (JSON, no pickle), applied with
    :func:`numpy.interp`.
    """
    from sklearn.isotonic import IsotonicRegression

    truth_array = np.asarray(truth, dtype=object)
    chosen = [positive_at] if len(classes) == 2 else range(len(classes))
    maps = {}
    for index in chosen:
        fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        fitted.fit(proba[:, index], (truth_array == classes[index]).astype(np.float64))
        maps[classes[index]] = [
            [float(v) for v in fitted.X_thresholds_],
            [float(v) for v in fitted.y_thresholds_],
        ]
    return maps


def calibrate(
    proba: np.ndarray, classes: list[str], maps: dict[str, list[list[float]]] | None
) -> np.ndarray:
    """``proba`` (rows x classes) through the calibration maps; unchanged without them."""
    if not maps:
        return proba
    out = proba.astype(np.float64, copy=True)
    if len(classes) == 2:
        (name,) = maps
        at = classes.index(name)
        xs, ys = maps[name]
        out[:, at] = np.interp(proba[:, at], xs, ys)
        out[:, 1 - at] = 1.0 - out[:, at]
        return out
    for at, name in enumerate(classes):
        if name in maps:
            xs, ys = maps[name]
            out[:, at] = np.interp(proba[:, at], xs, ys)
    total = out.sum(axis=1, keepdims=True)
    # A row every map sent to 0 keeps its raw probabilities.
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)


def estimate_metrics(
    metrics: Sequence[str],
    *,
    proba: np.ndarray,
    predicted: Sequence[str],
    classes: list[str],
    positive_at: int,
    calibration: dict[str, list[list[float]]] | None,
    draws: int = _DRAWS,
    seed: int = 0,
    realised: dict[str, float | None] | None = None,
) -> EstimatedPerformance:
    """The CBPE estimate of ``metrics`` on rows with these probabilities and predictions.

    Args:
        metrics: metric names; those outside :data:`ESTIMATED_METRICS` are skipped.
        proba: the logged class probabilities, rows x ``classes``.
        predicted: the logged predicted labels (text).
        classes: the classes, as text, in the order of ``proba``'s columns.
        positive_at: the column of the positive class (binary metrics).
        calibration: maps from :func:`fit_calibration`, or None (raw probabilities).
        draws: label vectors drawn.
        seed: seeds the draws.
        realised: the realised metrics on the same rows, to check against the interval.
    """
    rows = len(proba)
    estimates: dict[str, Estimate] = {}
    wanted = [m for m in metrics if m in ESTIMATED_METRICS]
    if rows and wanted:
        chances = calibrate(proba, classes, calibration)
        labels = _draw(chances, draws, np.random.default_rng(seed))
        index = {name: at for at, name in enumerate(classes)}
        guess = np.asarray([index.get(str(p), -1) for p in predicted], dtype=np.int64)
        values = _Draws(labels, guess, proba, len(classes), positive_at)
        for name in wanted:
            estimates[name] = _summarise(getattr(values, name)())
    within = {}
    for name, value in (realised or {}).items():
        found = estimates.get(name)
        if value is not None and found is not None and found.low is not None:
            assert found.high is not None
            within[name] = bool(found.low <= value <= found.high)
    return EstimatedPerformance(
        rows=rows,
        calibrated=bool(calibration),
        metrics=estimates,
        realised_within=within,
    )


def _draw(chances: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` x rows class indices, row i drawn from ``chances[i]``."""
    cumulative = np.cumsum(chances, axis=1)
    cumulative[:, -1] = 1.0  # rounding must not leave a gap above the last class
    uniform = rng.random((draws, len(chances)))
    labels = np.zeros(uniform.shape, dtype=np.int64)
    for column in range(chances.shape[1] - 1):  # classes, not rows: a handful of steps
        labels += uniform > cumulative[None, :, column]
    return labels


def _summarise(values: np.ndarray) -> Estimate:
    finite = values[np.isfinite(values)]
    if finite.size < values.size / 2:  # undefined on most draws (e.g. one class only)
        return Estimate(value=None, low=None, high=None)
    low, high = np.percentile(finite, [_LOW, _HIGH])
    return Estimate(value=float(finite.mean()), low=float(low), high=float(high))


class _Draws:
    """Each metric over all draws at once: ``labels`` is draws x rows."""

    def __init__(
        self,
        labels: np.ndarray,
        guess: np.ndarray,
        proba: np.ndarray,
        classes: int,
        positive_at: int,
    ) -> None:
        self.labels, self.guess, self.proba = labels, guess, proba
        self.classes, self.positive_at = classes, positive_at

    def _counts(self, at: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True positives, false positives and false negatives of class ``at`` per draw."""
        truth = self.labels == at
        said = (self.guess == at)[None, :]
        tp = (truth & said).sum(axis=1).astype(np.float64)
        fp = (~truth & said).sum(axis=1).astype(np.float64)
        fn = (truth & ~said).sum(axis=1).astype(np.float64)
        return tp, fp, fn

    @staticmethod
    def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)

    def accuracy(self) -> np.ndarray:
        return np.asarray((self.labels == self.guess[None, :]).mean(axis=1))

    def precision(self) -> np.ndarray:
        tp, fp, _ = self._counts(self.positive_at)
        return self._ratio(tp, tp + fp)

    def recall(self) -> np.ndarray:
        tp, _, fn = self._counts(self.positive_at)
        return self._ratio(tp, tp + fn)

    def f1(self) -> np.ndarray:
        tp, fp, fn = self._counts(self.positive_at)
        return self._ratio(2 * tp, 2 * tp + fp + fn)

    def f1_macro(self) -> np.ndarray:
        scores = [self._ratio(2 * tp, 2 * tp + fp + fn) for tp, fp, fn in self._each()]
        return np.asarray(np.mean(scores, axis=0))

    def balanced_accuracy(self) -> np.ndarray:
        # sklearn averages the recall of the classes present among the true labels.
        recalls = np.vstack([self._ratio(tp, tp + fn) for tp, _, fn in self._each()])
        with np.errstate(invalid="ignore"):
            return np.asarray(np.nanmean(recalls, axis=0))

    def _each(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [self._counts(at) for at in range(self.classes)]

    def roc_auc(self) -> np.ndarray:
        """Mann-Whitney form: (rank sum of positives - n1(n1+1)/2) / (n1 n0) per draw;
        binary for the positive class, multiclass the macro mean of one-vs-rest."""
        chosen = [self.positive_at] if self.classes == 2 else range(self.classes)
        scores = []
        for at in chosen:
            ranks = rankdata(self.proba[:, at])  # ties share their mean rank, as sklearn
            truth = (self.labels == at).astype(np.float64)
            n1 = truth.sum(axis=1)
            n0 = truth.shape[1] - n1
            top = truth @ ranks - n1 * (n1 + 1) / 2
            scores.append(self._ratio(top, n1 * n0))
        if self.classes > 2:
            # sklearn's one-vs-rest AUC needs every class present: else undefined.
            stacked = np.vstack(scores)
            return np.where(np.isnan(stacked).any(axis=0), np.nan, stacked.mean(axis=0))
        return scores[0]

    def brier(self) -> np.ndarray:
        positive = self.proba[:, self.positive_at][None, :]
        return np.asarray(((positive - (self.labels == self.positive_at)) ** 2).mean(axis=1))

    def log_loss(self) -> np.ndarray:
        # sklearn renormalises each row before clipping; so does this.
        proba = self.proba / self.proba.sum(axis=1, keepdims=True)
        chosen = np.take_along_axis(proba[None, :, :], self.labels[:, :, None], axis=2)[..., 0]
        return np.asarray(-np.log(np.clip(chosen, _CLIP, 1.0)).mean(axis=1))


def positive_index(classes: list[str], positive: str | None) -> int:
    """The column of the positive class: ``positive`` if among ``classes``, else the second."""
    return classes.index(positive) if positive in classes else min(1, len(classes) - 1)


def probabilities(frame: pd.DataFrame, classes: list[str], prefix: str) -> np.ndarray | None:
    """The ``prefix<class>`` columns of ``frame`` as rows x classes, or None if any lacks."""
    names = [prefix + c for c in classes]
    if not classes or any(n not in frame.columns for n in names):
        return None
    return frame[names].to_numpy(np.float64)
