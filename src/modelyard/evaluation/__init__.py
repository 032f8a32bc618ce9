"""The evaluation layer: metrics against a baseline, slices, gates, the diff, the report.

Pure functions on arrays and frames: the caller scores the rows, this layer judges them.

- :func:`compute_metrics` and :func:`baseline_predictions`: how good, and how good a
  dummy model is on the same rows;
- :func:`slice_metrics`: the same per value of a column;
- :func:`check_gates`: the spec's promotion conditions;
- :func:`diff_predictions`: how a candidate's predictions differ from production's;
- :class:`EvaluationReport` with :func:`render_text` and :func:`render_html`.
"""

from modelyard.evaluation.diff import (
    ChangeStats,
    DiffRow,
    LabelTransition,
    PredictionDiff,
    diff_predictions,
)
from modelyard.evaluation.gates import GateResult, check_gates
from modelyard.evaluation.metrics import (
    baseline_predictions,
    compute_metrics,
    format_pair,
    format_value,
    is_better,
)
from modelyard.evaluation.report import (
    EvaluationReport,
    ProductionComparison,
    render_diff_text,
    render_html,
    render_text,
)
from modelyard.evaluation.slices import MISSING_VALUE, SliceResult, slice_metrics

__all__ = [
    "MISSING_VALUE",
    "ChangeStats",
    "DiffRow",
    "EvaluationReport",
    "GateResult",
    "LabelTransition",
    "PredictionDiff",
    "ProductionComparison",
    "SliceResult",
    "baseline_predictions",
    "check_gates",
    "compute_metrics",
    "diff_predictions",
    "format_pair",
    "format_value",
    "is_better",
    "render_diff_text",
    "render_html",
    "render_text",
    "slice_metrics",
]
