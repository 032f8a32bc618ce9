"""The report's charts: their data, their text tables, and the inline SVG of the HTML page."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from modelyard.evaluation.charts import MAX_POINTS, Charts, chart_data, permutation_importance
from modelyard.evaluation.report import EvaluationReport, render_html, render_text


def _binary_rows(n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < 0.3, "yes", "no")
    score = np.clip(0.35 * (truth == "yes") + rng.normal(0.3, 0.2, n), 0.001, 0.999)
    return truth, np.column_stack([1 - score, score])


def test_regression_charts_sample_points_and_keep_residual_quantiles() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(100, 10, 2_000)
    predicted = actual + rng.normal(0, 2, 2_000)
    charts = chart_data("regression", actual, predicted, seed=3)
    data = charts.regression
    assert data is not None and len(data.actual) == MAX_POINTS and data.sampled_from == 2_000
    np.testing.assert_allclose(
        np.array(data.residuals), np.array(data.predicted) - np.array(data.actual)
    )
    assert data.residual_quantiles["p50"] == pytest.approx(np.median(predicted - actual))
    assert chart_data("regression", actual, predicted, seed=3) == charts  # seeded


def test_binary_charts_follow_the_positive_class_and_the_threshold() -> None:
    truth, proba = _binary_rows()
    labels = np.where(proba[:, 1] >= 0.4, "yes", "no")
    charts = chart_data(
        "binary", truth, labels, proba, ["no", "yes"], positive="yes", threshold=0.4
    ).classification
    assert charts is not None and charts.positive_class == "yes" and charts.threshold == 0.4
    assert sum(map(sum, charts.confusion)) == len(truth)
    assert charts.confusion[1][1] == int(((truth == "yes") & (labels == "yes")).sum())
    assert charts.roc is not None and charts.pr is not None and charts.calibration is not None
    assert charts.roc.area == pytest.approx(roc_auc_score(truth == "yes", proba[:, 1]))
    assert charts.pr.area == pytest.approx(average_precision_score(truth == "yes", proba[:, 1]))
    flagged = proba[:, 1] >= 0.4
    assert charts.roc.at_threshold == pytest.approx(
        (flagged[truth == "no"].mean(), flagged[truth == "yes"].mean())
    )
    assert sum(charts.calibration.rows) == len(truth)

    # "no" as the positive class: the curves are about P(no).
    other = chart_data("binary", truth, labels, proba, ["no", "yes"], positive="no")
    assert other.classification is not None and other.classification.positive_class == "no"
    assert other.classification.roc is not None
    assert other.classification.roc.area == pytest.approx(charts.roc.area)  # AUC is symmetric
    assert other.classification.pr is not None
    assert other.classification.pr.area != pytest.approx(charts.pr.area)


def test_multiclass_charts_have_a_confusion_matrix_only() -> None:
    truth = np.array(["a", "b", "c", "a", "b", "c"])
    predicted = np.array(["a", "b", "b", "a", "c", "c"])
    charts = chart_data("multiclass", truth, predicted, None, ["a", "b", "c"]).classification
    assert charts is not None and charts.roc is None
    assert charts.confusion == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]


def test_permutation_importance_ranks_the_column_the_model_uses() -> None:
    rng = np.random.default_rng(4)
    rows = pd.DataFrame({"noise": rng.normal(size=300), "signal": rng.normal(size=300)})
    target = 3 * rows["signal"].to_numpy() + rng.normal(0, 0.1, 300)
    model = LinearRegression().fit(rows, target)
    found = permutation_importance(
        model, rows, target, task="regression", metric="rmse", higher_is_better=False, seed=1
    )
    assert found.columns == ["signal", "noise"]
    assert found.mean[0] > 1.0 and abs(found.mean[1]) < 0.05

    labels = np.where(rows["signal"] > 0, "up", "down")
    classifier = LogisticRegression().fit(rows, labels)
    by_loss = permutation_importance(
        classifier, rows, labels, task="binary", metric="log_loss", higher_is_better=False
    )
    assert by_loss.columns[0] == "signal" and by_loss.mean[0] > 0


def _report(charts: Charts) -> EvaluationReport:
    return EvaluationReport(
        model="churn",
        version=2,
        task="binary",
        rows=400,
        primary_metric="log_loss",
        metrics={"log_loss": 0.5},
        baseline_metrics={"log_loss": 0.6},
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        charts=charts,
        lineage={"data": "data/customers.csv, snapshot 0123456789ab", "seed": "9"},
    )


def _full_charts() -> Charts:
    truth, proba = _binary_rows()
    labels = np.where(proba[:, 1] >= 0.5, "yes", "no")
    charts = chart_data("binary", truth, labels, proba, ["no", "yes"], positive="yes")
    rows = pd.DataFrame({"spend": proba[:, 1], "region": np.zeros(len(truth))})
    model = LogisticRegression().fit(rows, truth)
    importance = permutation_importance(
        model, rows, truth, task="binary", metric="log_loss", higher_is_better=False
    )
    return charts.model_copy(update={"importance": importance})


def test_text_report_prints_the_tables_behind_the_charts() -> None:
    text = render_text(_report(_full_charts()))
    for heading in (
        "Confusion matrix",
        "ROC curve (yes): AUC",
        "Precision-recall: average precision",
        "Calibration of P(yes)",
        "Permutation importance: log_loss worse when a column is shuffled",
        "Lineage",
        "  seed: 9",
    ):
        assert heading in text, heading
    assert re.search(r"actual \\ predicted\s+no\s+yes", text)


def test_html_report_embeds_each_chart_as_svg_and_nothing_external() -> None:
    report = _report(_full_charts())
    html = render_html(report)
    assert html.count("<svg") == 5  # confusion, ROC, PR, calibration, importance
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert not re.search(r"""(src|href)=["']https?:""", html)
    assert "0123456789ab" in html  # the lineage table
    assert render_html(report) == html  # deterministic


def test_report_with_charts_round_trips_through_json() -> None:
    report = _report(_full_charts())
    assert EvaluationReport.model_validate_json(report.model_dump_json()) == report


def test_html_without_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    html = render_html(_report(_full_charts()))
    assert "<svg" not in html and "pip install &#39;modelyard[report]&#39;" in html


def test_regression_report_draws_predicted_vs_actual_and_residuals() -> None:
    rng = np.random.default_rng(2)
    actual = rng.normal(200_000, 50_000, 300)
    charts = chart_data("regression", actual, actual + rng.normal(0, 9_000, 300))
    report = _report(charts).model_copy(
        update={
            "task": "regression",
            "primary_metric": "rmse",
            "metrics": {"rmse": 9e3},
            "baseline_metrics": {"rmse": 5e4},
        }
    )
    html = render_html(report)
    assert html.count("<svg") == 2
    assert "Predicted vs actual" in html and "Residuals" in html
    text = render_text(report)
    assert "Residuals (predicted - actual): p05" in text
    assert "Predicted vs actual, by tenth of the predictions" in text
