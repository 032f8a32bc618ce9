"""Window summaries: bounded samples, classifier profiles and labelled performance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.monitoring.drift import MonitorConfig
from modelyard.monitoring.profile import build_profile, feature_kinds, profile_column
from modelyard.monitoring.summary import WindowSummary, assess


def test_sample_stays_bounded_and_uniform_over_many_chunks() -> None:
    train = pd.DataFrame({"x": np.arange(1000.0)})
    profile = build_profile(
        model="m",
        version=1,
        task="regression",
        train=train,
        kinds={"x": "numeric"},
        predictions=np.arange(10.0),
    )
    summary = WindowSummary(profile, config=MonitorConfig(sample_rows=500))
    for start in range(0, 100_000, 1000):
        chunk = pd.DataFrame({"x": np.arange(start, start + 1000, dtype=np.float64)})
        summary.add(chunk, chunk["x"])
        assert len(summary.sample) <= 500
    assert summary.rows == 100_000
    # Uniform over the whole window, not the first or last chunks.
    assert summary.sample["x"].mean() == pytest.approx(50_000, rel=0.1)
    assert summary.sample["x"].min() < 10_000 and summary.sample["x"].max() > 90_000


def test_datetime_and_numeric_text_kinds() -> None:
    frame = pd.DataFrame(
        {
            "built": ["2020-01-01", "2021-06-30", None],
            "zone": ["a", "b", "a"],
            "year": [2019, 2020, 2021],
        }
    )
    kinds = feature_kinds(frame, categorical=["year"])
    assert kinds == {"built": "datetime", "zone": "categorical", "year": "categorical"}
    built = profile_column(frame["built"], "datetime")
    assert built.kind == "datetime" and built.missing == 1
    assert built.min == pytest.approx(18262.0)  # 2020-01-01 in days since 1970
    # Logged categories may come back as floats: 2019.0 is category "2019".
    summary = WindowSummary(
        build_profile(
            model="m",
            version=1,
            task="regression",
            train=frame,
            kinds=kinds,
            predictions=np.zeros(3),
        ),
        config=MonitorConfig(),
    )
    logged = pd.DataFrame(
        {
            "built": pd.to_datetime(["2020-01-01", "not a date"], errors="coerce"),
            "zone": ["a", "c"],
            "year": [2019.0, 2030.0],
        }
    )
    summary.add(logged, pd.Series([1.0, 2.0]))
    report = assess(summary)
    assert report.too_small
    quality = {q.column: q for q in report.quality}
    assert quality["year"].unseen_categories == 1 and quality["year"].unseen_examples == ["2030"]
    assert quality["zone"].unseen_examples == ["c"]
    assert quality["built"].missing_rate == 0.5


def test_classifier_profile_and_labelled_performance() -> None:
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x": rng.normal(size=500)})
    profile = build_profile(
        model="churn",
        version=2,
        task="binary",
        train=train,
        kinds={"x": "numeric"},
        predictions=pd.Series(["no", "yes"] * 100),
        classes=["no", "yes"],
        metrics={"accuracy": 0.9, "roc_auc": 0.95},
    )
    assert profile.prediction.kind == "categorical"
    summary = WindowSummary(profile, config=MonitorConfig(multivariate_rows=0))
    rows = pd.DataFrame({"x": rng.normal(size=200)})
    predictions = pd.Series(["yes"] * 150 + ["no"] * 50)  # predictions moved to "yes"
    labelled = pd.DataFrame(
        {
            "label": ["yes", "no", "yes", "no"],
            "label_float": [None] * 4,
            "prediction": ["yes", "no", "no", "no"],
            "proba.no": [0.2, 0.7, 0.6, 0.9],
            "proba.yes": [0.8, 0.3, 0.4, 0.1],
        }
    )
    summary.add(rows, predictions, labelled=labelled)
    report = assess(summary)
    assert report.prediction is not None and report.prediction.drift
    assert report.prediction.tests[0].effect == "jensen_shannon"
    assert report.performance is not None and report.performance.labelled_rows == 4
    assert report.performance.metrics == {"accuracy": 0.75, "roc_auc": 1.0}
    assert report.performance.reference_metrics == {"accuracy": 0.9, "roc_auc": 0.95}
