"""What monitoring finds, as frozen pydantic records (JSON through ``model_dump``).

A :class:`MonitorReport` holds one :class:`WindowReport` per window of logged rows; each
window has its drift per column (:class:`ColumnDrift`, one :class:`TestResult` per
statistical test), prediction drift, multivariate drift, data quality and, where labels
arrived, performance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ColumnDrift",
    "ColumnQuality",
    "Estimate",
    "EstimatedPerformance",
    "Histogram",
    "MonitorReport",
    "MultivariateDrift",
    "Performance",
    "Skew",
    "TestResult",
    "VersionReport",
    "WindowReport",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TestResult(_Frozen):
    """One two-sample test of a column: its p-value and the effect size beside it.

    ``drift`` is true only when the corrected p-value is below the configured level
    *and* the effect size reaches its threshold.
    """

    __test__ = False  # not a pytest test class, despite the name

    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    p_adjusted: float
    effect: Literal["wasserstein", "psi", "jensen_shannon"]
    effect_size: float
    threshold: float
    drift: bool


class Histogram(_Frozen):
    """A column's shares over the reference bins (numeric) or categories, beside the
    reference's: what the report's charts draw. Categories past the most frequent few
    are summed into ``other``; values never seen in training fall in ``unseen``."""

    labels: list[str]
    reference: list[float]
    current: list[float]


class ColumnDrift(_Frozen):
    """Drift of one input column (or of the predictions) against the reference."""

    column: str
    kind: str
    rows: int
    tests: list[TestResult]
    drift: bool
    skipped: str | None = None
    histogram: Histogram | None = None

    @property
    def strength(self) -> float:
        """The largest effect size relative to its threshold (1: at the threshold)."""
        return max(
            (t.effect_size / t.threshold if t.threshold > 0 else 0.0 for t in self.tests),
            default=0.0,
        )


class MultivariateDrift(_Frozen):
    """Drift of the inputs taken together: can a classifier tell the window from the
    reference? ``auc`` is its cross-validated ROC AUC (0.5: indistinguishable)."""

    method: Literal["domain_classifier"] = "domain_classifier"
    auc: float
    p_value: float
    threshold: float
    reference_rows: int
    current_rows: int
    drift: bool


class ColumnQuality(_Frozen):
    """Data quality of one input column in a window, next to the reference's."""

    column: str
    rows: int
    missing_rate: float
    reference_missing_rate: float
    unseen_categories: int = 0
    unseen_examples: list[str] = []
    out_of_range: int = 0
    type_problems: int = 0
    problems: list[str] = []


class Performance(_Frozen):
    """Metrics on the rows of a window whose labels arrived, next to the reference's."""

    labelled_rows: int
    metrics: dict[str, float | None]
    reference_metrics: dict[str, float | None]


class Estimate(_Frozen):
    """An estimated metric: its expected value and the interval (2.5% to 97.5%) where
    the realised metric should fall; None where the metric is undefined."""

    value: float | None
    low: float | None
    high: float | None


class EstimatedPerformance(_Frozen):
    """Performance estimated from the logged class probabilities before labels arrive
    (CBPE; see :mod:`~modelyard.monitoring.estimate`).

    ``metrics`` holds the estimate on the window's rows. Where labels arrived,
    ``on_labelled`` is the estimate on the labelled rows alone and ``realised_within``
    says whether each realised metric fell inside its interval.
    """

    method: Literal["cbpe"] = "cbpe"
    rows: int
    calibrated: bool
    metrics: dict[str, Estimate]
    realised_within: dict[str, bool] = {}
    on_labelled: EstimatedPerformance | None = None


class Skew(_Frozen):
    """Live-vs-training skew: logged inputs replayed through the reference pipeline and
    compared with the outputs logged by the runtime that served them.

    ``skew`` is true when any row differs beyond the tolerance recorded with the
    version's ONNX parity (or the parity check's defaults): serving no longer computes
    what training computed. Rows whose logged text was cut short cannot be replayed
    and are counted in ``skipped``.
    """

    rows: int
    mismatched: int
    skipped: int = 0
    max_abs: float
    labels_equal: bool | None = None
    tolerance: dict[str, float]
    examples: list[dict[str, str | float | None]] = []
    skew: bool


class WindowReport(_Frozen):
    """Everything found in one window of logged rows."""

    start: datetime | None
    end: datetime | None
    rows: int
    too_small: bool
    features: list[ColumnDrift] = []
    prediction: ColumnDrift | None = None
    multivariate: MultivariateDrift | None = None
    quality: list[ColumnQuality] = []
    performance: Performance | None = None
    estimated: EstimatedPerformance | None = None
    skew: Skew | None = None

    @property
    def feature_drift(self) -> bool:
        """Whether any input column drifted."""
        return any(column.drift for column in self.features)

    @property
    def prediction_drift(self) -> bool:
        """Whether the predictions drifted."""
        return self.prediction is not None and self.prediction.drift

    @property
    def multivariate_drift(self) -> bool:
        """Whether the inputs drifted jointly."""
        return self.multivariate is not None and self.multivariate.drift

    @property
    def skewed(self) -> bool:
        """Whether the served outputs differ from the reference pipeline's."""
        return self.skew is not None and self.skew.skew

    @property
    def quality_problems(self) -> bool:
        """Whether any column has a data-quality problem."""
        return any(column.problems for column in self.quality)


class VersionReport(_Frozen):
    """The windows of one model version, compared with that version's reference."""

    ref: str
    profile_digest: str
    windows: list[WindowReport]


class MonitorReport(_Frozen):
    """The result of ``modelyard monitor``: every version's windows and the verdict."""

    model: str
    window: str
    since: datetime | None
    until: datetime | None
    fail_on: str
    versions: list[VersionReport]
    drift: bool
