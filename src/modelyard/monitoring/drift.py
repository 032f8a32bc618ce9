"""Drift tests of one window against a reference profile (pure: arrays in, results out).

Per column, a test gives a p-value and an effect size; a column drifts only when the
p-value, corrected for testing every column at once (Benjamini-Hochberg, or Holm), is
below ``alpha`` *and* the effect size reaches its threshold. With large windows any tiny
difference is "significant"; the effect size keeps those quiet. With small windows a
large effect can be noise; the p-value keeps those quiet.

- numeric: Kolmogorov-Smirnov against the reference quantile grid, with the Wasserstein
  distance in reference standard deviations as its effect size; and a chi-squared test
  over the reference decile bins plus a missing bin, with the population stability
  index (PSI) over the same bins as its effect size (so missing values count);
- categorical: chi-squared over the reference categories plus unseen and missing, with
  the Jensen-Shannon distance (base 2, from 0 to 1) as its effect size;
- multivariate: a domain classifier (histogram gradient boosting) tries to tell window
  rows from reference rows; its cross-validated ROC AUC is the effect size and the
  Mann-Whitney test of its out-of-fold scores the p-value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelyard.monitoring.profile import (
    CategoricalProfile,
    FeatureKind,
    FeatureProfile,
    NumericProfile,
    numeric_values,
)
from modelyard.monitoring.results import ColumnDrift, MultivariateDrift, TestResult

__all__ = [
    "MonitorConfig",
    "categorical_tests",
    "correct",
    "domain_classifier",
    "ks_and_wasserstein",
    "numeric_tests",
    "population_stability_index",
]

_EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
_MAX_CODES = 250  # HistGradientBoosting takes at most 255 categories per feature


class MonitorConfig(BaseModel):
    """Thresholds of the monitoring checks; the defaults keep false alarms rare.

    Every drift threshold must be passed together with the corrected p-value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=1, description="false discovery (or family) rate")
    correction: Literal["bh", "holm"] = "bh"
    psi: float = Field(default=0.2, ge=0, description="PSI at or above which a column moved")
    wasserstein: float = Field(default=0.1, ge=0, description="in reference standard deviations")
    jensen_shannon: float = Field(default=0.1, ge=0, le=1, description="Jensen-Shannon distance")
    auc: float = Field(default=0.6, ge=0.5, le=1, description="domain classifier ROC AUC")
    min_rows: int = Field(default=100, ge=2, description="smaller windows are 'too small'")
    sample_rows: int = Field(default=10_000, ge=100, description="rows kept per window for KS")
    multivariate_rows: int = Field(default=1000, ge=0, description="rows per side; 0: no check")
    skew_rows: int = Field(
        default=1000, ge=0, description="logged rows replayed per window; 0: no skew check"
    )
    quality_tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="share of rows past the reference's (missing), or of all rows (unseen, "
        "out of range), from which a data-quality problem is reported",
    )


def population_stability_index(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two count vectors over the same bins: sum of (c - r) * ln(c / r) over shares.

    Empty bins get a share of 1e-4 so the index stays finite.

    Example:
        >>> round(population_stability_index(np.array([50, 50]), np.array([50, 50])), 6)
        0.0
    """
    ref = np.clip(reference / max(reference.sum(), 1), _EPSILON, None)
    cur = np.clip(current / max(current.sum(), 1), _EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _chi2(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity of two count vectors (empty bins dropped)."""
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def ks_and_wasserstein(
    grid: np.ndarray, ordered: np.ndarray, reference_rows: int
) -> tuple[float, float, float]:
    """Kolmogorov-Smirnov distance and p-value, and Wasserstein distance, between the
    reference (its quantile grid) and a sorted sample, from one merged order of both.

    The p-value is that of a two-sample test with ``reference_rows`` reference rows, as
    ``scipy.stats.ks_2samp``'s asymptotic method computes it. The Wasserstein distance
    is the area between the two step CDFs, as ``scipy.stats.wasserstein_distance``
    computes it; done here because scipy sorts both sides again and takes the area
    with a BLAS dot product, whose threads cost more than the sum on a busy machine.
    """
    grid = np.sort(grid)
    points = np.concatenate([grid, ordered])
    points.sort(kind="stable")  # two sorted runs: a merge
    ref_cdf = np.searchsorted(grid, points, side="right") / grid.size
    cur_cdf = np.searchsorted(ordered, points, side="right") / ordered.size
    gaps = np.abs(ref_cdf - cur_cdf)
    distance = float(np.max(gaps))
    moved = float(np.sum(gaps[:-1] * np.diff(points)))
    effective = reference_rows * ordered.size / (reference_rows + ordered.size)
    return distance, float(stats.kstwo.sf(distance, max(1, round(effective)))), moved


def numeric_tests(
    reference: NumericProfile,
    *,
    bin_counts: np.ndarray,
    sample: np.ndarray,
    config: MonitorConfig,
) -> list[TestResult]:
    """KS + Wasserstein and chi-squared + PSI of a numeric column (p-values uncorrected).

    Args:
        reference: the column's reference profile.
        bin_counts: the window's counts in the reference bins, then its missing count.
        sample: a uniform sample of the window's present values.
        config: the thresholds.
    """
    results = []
    reference_bins = np.asarray([*reference.bin_counts, reference.missing], dtype=np.float64)
    statistic, p_value = _chi2(reference_bins, bin_counts)
    psi = population_stability_index(reference_bins, bin_counts.astype(np.float64))
    results.append(_result("chi2", statistic, p_value, "psi", psi, config.psi))
    finite = sample[np.isfinite(sample)]
    if reference.quantiles and finite.size:
        grid = np.asarray(reference.quantiles)
        distance, p_value, moved = ks_and_wasserstein(grid, np.sort(finite), reference.present)
        results.append(
            _result(
                "ks", distance, p_value, "wasserstein", moved / reference.scale, config.wasserstein
            )
        )
    return results


def categorical_tests(
    reference: CategoricalProfile,
    *,
    counts: Mapping[str, int],
    unseen: int,
    missing: int,
    config: MonitorConfig,
) -> list[TestResult]:
    """Chi-squared + Jensen-Shannon of a categorical column (p-value uncorrected).

    Args:
        reference: the column's reference profile.
        counts: the window's count of each reference category.
        unseen: the window's rows with a category the reference never had.
        missing: the window's rows without a value.
        config: the thresholds.
    """
    names = list(reference.counts)
    ref = np.asarray([*(reference.counts[n] for n in names), 0, reference.missing], np.float64)
    cur = np.asarray([*(counts.get(n, 0) for n in names), unseen, missing], np.float64)
    statistic, p_value = _chi2(ref, cur)
    distance = float(jensenshannon(ref, cur, base=2)) if cur.sum() and ref.sum() else 0.0
    distance = 0.0 if np.isnan(distance) else distance
    return [_result("chi2", statistic, p_value, "jensen_shannon", distance, config.jensen_shannon)]


def _result(
    test: Literal["ks", "chi2"],
    statistic: float,
    p_value: float,
    effect: Literal["wasserstein", "psi", "jensen_shannon"],
    size: float,
    threshold: float,
) -> TestResult:
    return TestResult(
        test=test,
        statistic=statistic,
        p_value=p_value,
        p_adjusted=p_value,
        effect=effect,
        effect_size=float(size),
        threshold=threshold,
        drift=False,
    )


def correct(columns: Sequence[ColumnDrift], config: MonitorConfig) -> list[ColumnDrift]:
    """Correct every test's p-value for the whole family, then decide drift per test.

    One family per window: all tests of all columns given (inputs and predictions).
    """
    p_values = np.asarray([t.p_value for c in columns for t in c.tests], dtype=np.float64)
    if p_values.size == 0:
        return list(columns)
    if config.correction == "bh":
        adjusted = stats.false_discovery_control(p_values, method="bh")
    else:
        adjusted = _holm(p_values)
    position = 0
    corrected = []
    for column in columns:
        tests = []
        for test in column.tests:
            p_adjusted = float(adjusted[position])
            position += 1
            drift = p_adjusted < config.alpha and test.effect_size >= test.threshold
            tests.append(test.model_copy(update={"p_adjusted": p_adjusted, "drift": drift}))
        corrected.append(
            column.model_copy(update={"tests": tests, "drift": any(t.drift for t in tests)})
        )
    return corrected


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (scipy has only BH and BY)."""
    order = np.argsort(p_values)
    count = p_values.size
    stepped = np.maximum.accumulate(p_values[order] * (count - np.arange(count)))
    adjusted = np.empty_like(p_values)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def domain_classifier(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, FeatureKind],
    profiles: Mapping[str, FeatureProfile],
    *,
    config: MonitorConfig,
    seed: int = 0,
) -> MultivariateDrift:
    """Whether a classifier tells ``current`` rows from ``reference`` rows.

    Both frames hold the columns of ``kinds``; categories are coded by the reference
    profile (unseen ones share one code). Three-fold cross-validated predictions give an
    out-of-fold score per row: ROC AUC is the effect size, and the one-sided Mann-Whitney
    test of the scores (the same statistic) its p-value. The folds' scores are not quite
    independent, so that p-value runs small; the AUC threshold is what keeps unchanged
    windows quiet (cross-validated AUC of indistinguishable samples stays near 0.5).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    matrix = np.vstack([_encode(reference, kinds, profiles), _encode(current, kinds, profiles)])
    target = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    model = HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.1,
        max_leaf_nodes=15,
        early_stopping=False,
        categorical_features=np.asarray([kinds[n] == "categorical" for n in kinds]),
        random_state=seed,
    )
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    # One OpenMP thread: on a few thousand rows the threads' start-up costs more than
    # they save, and on a busy machine they make it ten times slower.
    with threadpool_limits(limits=1):
        scores = cross_val_predict(model, matrix, target, cv=folds, method="predict_proba")
    scores = scores[:, 1]
    auc = float(roc_auc_score(target, scores))
    p_value = float(
        stats.mannwhitneyu(scores[target == 1], scores[target == 0], alternative="greater").pvalue
    )
    return MultivariateDrift(
        auc=auc,
        p_value=p_value,
        threshold=config.auc,
        reference_rows=len(reference),
        current_rows=len(current),
        drift=p_value < config.alpha and auc >= config.auc,
    )


def _encode(
    frame: pd.DataFrame, kinds: Mapping[str, FeatureKind], profiles: Mapping[str, FeatureProfile]
) -> np.ndarray:
    """Numbers as they are; categories as codes by reference frequency (unseen last)."""
    from modelyard.data.schema import category_keys

    columns = []
    for name, kind in kinds.items():
        values = frame[name]
        profile = profiles[name]
        if kind != "categorical" or not isinstance(profile, CategoricalProfile):
            columns.append(numeric_values(values, kind))
            continue
        ranked = sorted(profile.counts, key=lambda k: -profile.counts[k])[:_MAX_CODES]
        codes = {key: float(index) for index, key in enumerate(ranked)}
        present = values.notna().to_numpy()
        coded = np.full(len(values), np.nan)
        keys = category_keys(values[present])
        coded[present] = keys.map(codes).fillna(float(_MAX_CODES)).to_numpy(dtype=np.float64)
        columns.append(coded)
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))
