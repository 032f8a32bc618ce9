"""The spec's ``evaluation`` section: metrics, slices and gates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelyard.spec._base import _DEFAULT_METRICS, Task, _Frozen

__all__ = ["EvaluationSpec", "GateSpec"]


class GateSpec(_Frozen):
    """A condition a trained model must meet to be promotable.

    - ``min`` / ``max``: absolute bounds on ``metric``;
    - ``beat_baseline``: ``metric`` must be better than the dummy baseline's;
    - ``max_regression``: ``metric`` may be at most this share worse than the version in
      production, on the same evaluation rows (0.05 = 5%);
    - ``slice``: check the gate on each value of that column with at least ``min_rows``
      evaluation rows, instead of on all rows.
    """

    metric: str
    min: float | None = None
    max: float | None = None
    beat_baseline: bool = False
    max_regression: float | None = Field(default=None, ge=0)
    slice: str | None = None
    min_rows: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _has_condition(self) -> GateSpec:
        if (
            self.min is None
            and self.max is None
            and not self.beat_baseline
            and (self.max_regression is None)
        ):
            raise ValueError("a gate needs one of 'min', 'max', 'beat_baseline', 'max_regression'")
        return self

    def describe(self) -> str:
        """A short human description, e.g. ``rmse <= 40000 per Neighborhood``."""
        parts = []
        if self.min is not None:
            parts.append(f"{self.metric} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.metric} <= {self.max:g}")
        if self.beat_baseline:
            parts.append(f"{self.metric} beats baseline")
        if self.max_regression is not None:
            parts.append(f"{self.metric} at most {self.max_regression:.0%} worse than production")
        text = " and ".join(parts)
        return f"{text} per {self.slice}" if self.slice else text


class EvaluationSpec(_Frozen):
    """Metrics, slices and gates; ``diff_tolerance`` is the differential test's threshold.

    ``leakage`` says what ``train`` does with features that look like target leaks:
    ``warn`` (report them), ``fail`` (also add a failing gate), ``off`` (no check).
    """

    metrics: list[str] | None = None
    primary_metric: str | None = None
    slices: list[str] = Field(default_factory=list)
    gates: list[GateSpec] = Field(default_factory=list)
    diff_tolerance: float = Field(default=1e-6, ge=0)
    top_changes: int = Field(default=10, ge=0)
    leakage: Literal["warn", "fail", "off"] = "warn"
    #: Shuffles per input column for the report's permutation importance (0: none).
    importance_repeats: int = Field(default=3, ge=0, le=50)

    def resolved_metrics(self, task: Task) -> list[str]:
        """The metrics to compute for ``task`` (the defaults if none were given)."""
        return list(self.metrics) if self.metrics else list(_DEFAULT_METRICS[task])

    def resolved_primary(self, task: Task) -> str:
        """The metric that ranks versions: ``primary_metric`` or the first metric."""
        return self.primary_metric or self.resolved_metrics(task)[0]
