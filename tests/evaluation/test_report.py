"""The evaluation report: JSON round trip, plain text and HTML rendering."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pydantic
import pytest

import modelyard.evaluation as evaluation
from modelyard.evaluation import (
    EvaluationReport,
    ProductionComparison,
    SliceResult,
    baseline_predictions,
    check_gates,
    compute_metrics,
    diff_predictions,
    render_diff_text,
    render_html,
    render_text,
    slice_metrics,
)
from modelyard.spec import REGRESSION_METRICS, GateSpec

CREATED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
METRICS = ["rmse", "mae"]


def build_report(*, with_production: bool = True) -> EvaluationReport:
    """A whole evaluation of made-up house prices, through the real functions."""
    rng = np.random.default_rng(7)
    rows = 120
    y_true = rng.normal(180000, 40000, rows).round()
    y_pred = y_true + rng.normal(0, 20000, rows).round()
    neighborhood = pd.Series(
        rng.choice(["NAmes", "OldTown", "<script>alert(1)</script>"], rows), name="Neighborhood"
    )
    baseline_values, _, _ = baseline_predictions("regression", y_true, rows, seed=0)
    metrics = compute_metrics("regression", METRICS, y_true, y_pred)
    baseline = compute_metrics("regression", METRICS, y_true, baseline_values)
    slices = slice_metrics(
        neighborhood, task="regression", metrics=METRICS, y_true=y_true, y_pred=y_pred
    )
    old_pred = y_pred.copy()
    old_pred[:5] += 1000.0
    production = (
        compute_metrics("regression", METRICS, y_true, old_pred) if with_production else None
    )
    gates = check_gates(
        [
            GateSpec(metric="rmse", max=40000),
            GateSpec(metric="rmse", max=1000, slice="Neighborhood"),
            GateSpec(metric="rmse", max_regression=0.05),
        ],
        metrics=metrics,
        baseline=baseline,
        slices=slices,
        production=production,
        higher_is_better=REGRESSION_METRICS.__getitem__,
    )
    diff = diff_predictions(
        old_pred, y_pred, task="regression", atol=1e-6, ids=pd.DataFrame({"Id": range(rows)})
    )
    return EvaluationReport(
        model="house-prices",
        version=3,
        task="regression",
        rows=rows,
        primary_metric="rmse",
        metrics=metrics,
        baseline_metrics=baseline,
        slices=slices,
        gates=gates,
        production=ProductionComparison(ref="house-prices v2", metrics=production)
        if production is not None
        else None,
        diff=diff if with_production else None,
        created_at=CREATED,
    )


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    return build_report()


def test_report_round_trips_through_json(report: EvaluationReport) -> None:
    data = report.model_dump(mode="json")
    assert EvaluationReport.model_validate(data) == report
    assert EvaluationReport.model_validate_json(report.model_dump_json()) == report


def test_nan_metrics_survive_json(report: EvaluationReport) -> None:
    with_nan = report.model_copy(update={"metrics": {**report.metrics, "mae": math.nan}})
    text = with_nan.model_dump_json()
    assert '"mae":"NaN"' in text
    restored = EvaluationReport.model_validate_json(text)
    assert math.isnan(restored.metrics["mae"])
    assert restored.model_dump_json() == text


def test_passed_is_computed_from_gates(report: EvaluationReport) -> None:
    assert report.passed is False  # the slice gate fails
    data = report.model_dump(mode="json")
    del data["passed"]
    assert EvaluationReport.model_validate(data).passed is False
    data["passed"] = True
    with pytest.raises(pydantic.ValidationError, match=r"passed=True contradicts the gates"):
        EvaluationReport.model_validate(data)


def test_text_shows_metrics_gates_slices_and_diff(report: EvaluationReport) -> None:
    text = render_text(report)
    assert text.startswith("Evaluation of house-prices v3: FAILED\n")
    rmse = evaluation.format_value(report.metrics["rmse"])
    baseline_rmse = evaluation.format_value(report.baseline_metrics["rmse"])
    metric_line = next(line for line in text.splitlines() if line.startswith("* rmse"))
    assert rmse in metric_line and baseline_rmse in metric_line
    assert "  PASS  rmse <= 40000" in text
    assert "  FAIL  rmse <= 1000 per Neighborhood" in text
    assert "Worst slices by rmse (3 in all)" in text
    assert "5 of 120 rows changed (4.2%" in text
    assert "Id=0" in text


def test_text_lists_the_ten_worst_slices_worst_first() -> None:
    slices = [
        SliceResult(column="g", value=f"v{i}", rows=30, metrics={"rmse": float(i)})
        for i in range(12)
    ]
    slices.append(
        SliceResult(column="g", value="few", rows=2, metrics={"rmse": 99.0}, enough_rows=False)
    )
    report = EvaluationReport(
        model="m",
        version=None,
        task="regression",
        rows=362,
        primary_metric="rmse",
        metrics={"rmse": 5.0},
        baseline_metrics={"rmse": 9.0},
        slices=slices,
        created_at=CREATED,
    )
    text = render_text(report)
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("  g=")]
    assert listed == [f"g=v{i}" for i in range(11, 1, -1)]  # large slices first, worst on top
    assert "Evaluation of m (candidate): PASSED" in text
    assert "Gates: none declared" in text


def test_skipped_gate_is_shown_as_skip_and_not_counted_as_passed() -> None:
    report = build_report(with_production=False)
    text = render_text(report)
    assert "  SKIP  rmse at most 5% worse than production" in text
    assert "no version in production to compare with" in text
    assert "Gates: 1 passed, 1 failed, 1 skipped (of 3)\n" in text
    assert "Gates: 2 passed, 1 failed (of 3)\n" in render_text(build_report())
    assert evaluation.report.gate_summary(report.gates[:1]) == "1 passed (of 1)"
    assert '<span class="badge skip">SKIP</span>' in render_html(report)


def test_the_time_shown_is_the_evaluations(report: EvaluationReport) -> None:
    assert "120 evaluation rows, evaluated 2025-03-01T12:00:00+00:00\n" in render_text(report)
    assert "evaluated 2025-03-01T12:00:00+00:00" in render_html(report)
    assert "created" not in render_text(report)


def test_production_metrics_beside_the_candidates(report: EvaluationReport) -> None:
    assert report.production is not None
    production_rmse = evaluation.format_value(report.production.metrics["rmse"])
    text = render_text(report)
    assert "production (house-prices v2)" in text
    metric_line = next(line for line in text.splitlines() if line.startswith("* rmse"))
    assert metric_line.split()[-1] == production_rmse
    html = render_html(report)
    assert "<th>production (house-prices v2)</th>" in html and production_rmse in html


def test_diff_text() -> None:
    diff = diff_predictions(
        np.array(["a", "b", "b"]),
        np.array(["b", "b", "a"]),
        task="binary",
        atol=0.0,
    )
    text = render_diff_text(diff, old_ref="churn v1", new_ref="churn v2")
    assert text.startswith("Prediction diff churn v1 -> churn v2: 2 of 3 rows changed (66.7%")
    assert "    a -> b: 1" in text and "    b -> a: 1" in text


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_parses_and_escapes_values(report: EvaluationReport) -> None:
    html = render_html(report)
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert html.startswith("<!DOCTYPE html>")
    assert "script" not in parser.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any("<script>alert(1)</script>" in chunk for chunk in parser.text)  # shown as text
    assert {"html", "table", "style"} <= set(parser.tags)
    assert "link" not in parser.tags and "src=" not in html  # self-contained
    assert evaluation.format_value(report.metrics["rmse"]) in html
    assert "FAILED" in html


def test_positive_class_shares_and_warnings_in_text_and_html() -> None:
    report = EvaluationReport(
        model="credit",
        version=1,
        task="binary",
        rows=200,
        primary_metric="log_loss",
        metrics={"log_loss": 0.45, "f1": 0.6},
        baseline_metrics={"log_loss": 0.61, "f1": 0.0},
        created_at=CREATED,
        positive_class="bad",
        class_shares={"bad": 0.3, "good": 0.7},
        warnings=["possible target leak: 'cancel_code': alone it predicts the target"],
    )
    text = render_text(report)
    assert "positive class: 'bad' (f1, precision, recall, ROC AUC)" in text
    assert "training classes: bad 30.0%, good 70.0%" in text
    assert "Warnings (1)\n  - possible target leak: 'cancel_code'" in text
    html = render_html(report)
    assert "positive class bad" in html and "bad 30.0%" in html
    assert "possible target leak: &#39;cancel_code&#39;" in html
