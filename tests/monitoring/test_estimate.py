"""The performance estimate before labels (CBPE): its intervals hold on calibrated
probabilities, fail on overconfident ones, and recover with the calibration map."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from _projects import classification_frame
from _yard import Yard
from modelyard import api
from modelyard.models.fit import predict
from modelyard.monitoring.drift import MonitorConfig
from modelyard.monitoring.estimate import calibrate, estimate_metrics, fit_calibration
from modelyard.monitoring.labels import add_labels
from modelyard.monitoring.monitor import monitor
from modelyard.monitoring.windows import parse_window
from modelyard.predlog import PredictionLog
from modelyard.types import RuntimeOutput

from .conftest import DAY1, DAY2

CLASSES = ["no", "yes"]
METRICS = ["accuracy", "f1", "precision", "recall", "roc_auc", "brier", "log_loss"]


def _world(rows: int, rng: np.random.Generator, *, sharpen: float = 1.0):  # type: ignore[no-untyped-def]
    """True chances of "yes", labels drawn from them, and a model's probabilities:
    the chances themselves (calibrated) or sharpened (overconfident, sharpen > 1)."""
    score = rng.normal(0.0, 1.5, rows)
    chance = 1 / (1 + np.exp(-score))
    truth = np.where(rng.random(rows) < chance, "yes", "no")
    said = 1 / (1 + np.exp(-score * sharpen))
    proba = np.column_stack([1 - said, said])
    predicted = np.where(said >= 0.5, "yes", "no")
    return truth, proba, predicted


def _realised(truth: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    positive = truth == "yes"
    return {
        "accuracy": skm.accuracy_score(truth, predicted),
        "f1": skm.f1_score(truth, predicted, pos_label="yes"),
        "precision": skm.precision_score(truth, predicted, pos_label="yes"),
        "recall": skm.recall_score(truth, predicted, pos_label="yes"),
        "roc_auc": skm.roc_auc_score(positive, proba[:, 1]),
        "brier": skm.brier_score_loss(positive, proba[:, 1]),
        "log_loss": skm.log_loss(truth, proba, labels=CLASSES),
    }


def _coverage(sharpen: float, *, calibrated: bool, repeats: int = 120) -> dict[str, float]:
    rng = np.random.default_rng(11)
    inside = dict.fromkeys(METRICS, 0)
    for repeat in range(repeats):
        maps = None
        if calibrated:  # fitted on other rows of the same world, as on evaluation rows
            truth, proba, _ = _world(3000, rng, sharpen=sharpen)
            maps = fit_calibration(truth.tolist(), proba, CLASSES, positive_at=1)
        truth, proba, predicted = _world(1000, rng, sharpen=sharpen)
        found = estimate_metrics(
            METRICS,
            proba=proba,
            predicted=predicted.tolist(),
            classes=CLASSES,
            positive_at=1,
            calibration=maps,
            seed=repeat,
            realised=_realised(truth, proba, predicted),
        )
        for name, within in found.realised_within.items():
            inside[name] += within
    return {name: count / repeats for name, count in inside.items()}


def test_intervals_cover_the_realised_metric_of_a_calibrated_classifier() -> None:
    # 95% intervals over 120 windows: coverage below 0.88 is 3.5 standard errors off.
    coverage = _coverage(1.0, calibrated=False)
    assert all(share >= 0.88 for share in coverage.values()), coverage


def test_overconfident_probabilities_miss_and_the_calibration_map_repairs_them() -> None:
    # Scores sharpened 3x: the model believes it is right far more often than it is.
    raw = _coverage(3.0, calibrated=False, repeats=30)
    assert raw["accuracy"] < 0.2 and raw["brier"] < 0.2, raw
    repaired = _coverage(3.0, calibrated=True, repeats=60)
    assert repaired["accuracy"] >= 0.8 and repaired["f1"] >= 0.8, repaired


def test_estimate_matches_the_expected_accuracy_and_handles_three_classes() -> None:
    proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]] * 500)
    predicted = ["a", "b", "c"] * 500
    found = estimate_metrics(
        ["accuracy", "f1_macro", "balanced_accuracy", "roc_auc", "log_loss", "mape"],
        proba=proba,
        predicted=predicted,
        classes=["a", "b", "c"],
        positive_at=1,
        calibration=None,
    )
    assert "mape" not in found.metrics  # not a classification metric: not estimated
    accuracy = found.metrics["accuracy"]
    assert accuracy.value == pytest.approx((0.9 + 0.7 + 0.8) / 3, abs=0.01)
    assert accuracy.low < accuracy.value < accuracy.high
    # The expected log loss of calibrated probabilities is their mean entropy.
    entropy = -(proba[:3] * np.log(proba[:3])).sum(axis=1).mean()
    assert found.metrics["log_loss"].value == pytest.approx(entropy, abs=0.02)
    assert found.metrics["roc_auc"].value is not None
    assert not found.calibrated


def test_calibration_maps_keep_rows_summing_to_one() -> None:
    rng = np.random.default_rng(3)
    raw = rng.dirichlet([1, 1, 1], size=500)
    truth = [["a", "b", "c"][i] for i in raw.argmax(axis=1)]
    maps = fit_calibration(truth, raw, ["a", "b", "c"], positive_at=1)
    assert set(maps) == {"a", "b", "c"}
    out = calibrate(raw, ["a", "b", "c"], maps)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.array_equal(calibrate(raw, ["a", "b", "c"], None), raw)


def test_a_trained_classifier_gets_an_estimate_then_its_labels(
    fresh_yard: Yard, tmp_path: Path
) -> None:
    """End to end: churn:1 trained, two days logged with the pipeline's outputs, labels
    for day 1 only: both days get a calibrated estimate, day 1 also the realised metric
    and the estimate on its labelled rows beside it."""
    settings = fresh_yard.settings
    fresh_yard.train_churn()
    pipeline = api.load_model("churn:1", settings=settings)
    frames = []
    with PredictionLog.open(settings, flush_seconds=3600) as predlog:
        for day, seed in ((DAY1, 21), (DAY2, 22)):
            frame = classification_frame(rows=600, seed=seed)
            inputs = frame.drop(columns=["customer_id", "label"])
            inputs["signup_date"] = pd.to_datetime(inputs["signup_date"])
            found = predict(pipeline, inputs)
            for number, start in enumerate(range(0, len(frame), 50)):
                part = slice(start, start + 50)
                columns = {c: inputs[c].to_numpy()[part] for c in inputs.columns}
                columns["signup_date"] = columns["signup_date"].astype("datetime64[ns]")
                predlog.log(
                    model="churn",
                    version=1,
                    request_id=f"{day:%d}-{number}",
                    received_at=day + timedelta(minutes=number),
                    columns=columns,
                    rows=len(frame.iloc[part]),
                    output=RuntimeOutput(
                        values=found.values[part], proba=found.proba[part], classes=found.classes
                    ),
                    latency_ms=1.0,
                    endpoint="predict",
                )
            frames.append(
                frame.assign(
                    request_id=[f"{day:%d}-{i // 50}" for i in range(600)],
                    row=[i % 50 for i in range(600)],
                )
            )
    frames[0][["request_id", "row", "label"]].to_csv(tmp_path / "labels.csv", index=False)
    add_labels(settings, "churn", tmp_path / "labels.csv")

    report = monitor(
        settings, "churn:1", window=parse_window("1d"), config=MonitorConfig(multivariate_rows=0)
    )
    day1, day2 = report.versions[0].windows
    for window in (day1, day2):
        assert window.estimated is not None and window.estimated.calibrated
        assert window.estimated.rows == 600
        roc = window.estimated.metrics["roc_auc"]
        assert roc.low is not None and roc.high is not None and roc.low < roc.high
        assert window.skew is not None and not window.skew.skew and window.skew.rows == 600
    assert day2.performance is None and day2.estimated.on_labelled is None
    assert day1.performance is not None and day1.performance.labelled_rows == 600
    on_labelled = day1.estimated.on_labelled
    assert on_labelled is not None and on_labelled.rows == 600
    assert set(day1.estimated.realised_within) >= {"roc_auc", "accuracy"}
    realised = day1.performance.metrics["accuracy"]
    estimate = on_labelled.metrics["accuracy"]
    assert realised is not None and estimate.value is not None
    assert abs(realised - estimate.value) < 0.1
