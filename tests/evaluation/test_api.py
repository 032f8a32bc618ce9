"""The public names of the evaluation layer are pinned."""

from __future__ import annotations

import modelyard.evaluation as evaluation


def test_public_names_are_pinned() -> None:
    assert evaluation.__all__ == [
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
    assert all(hasattr(evaluation, name) for name in evaluation.__all__)
