"""Metric values against numbers worked out by hand, nan cases, the baseline, comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.errors import DataError, SpecError
from modelyard.evaluation import (
    baseline_predictions,
    compute_metrics,
    format_pair,
    format_value,
    is_better,
)
from modelyard.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS

# errors 0, 1, -1, 2 ; mean target 2.5
Y_TRUE = np.array([1.0, 2.0, 3.0, 4.0])
Y_PRED = np.array([1.0, 3.0, 2.0, 6.0])

# positive class "yes"; one false positive at row 1
LABELS = np.array(["no", "no", "yes", "yes"])
PREDICTED = np.array(["no", "yes", "yes", "yes"])
P_YES = np.array([0.1, 0.6, 0.8, 0.4])
PROBA = np.column_stack([1 - P_YES, P_YES])


def test_regression_metrics_match_hand_computed_values() -> None:
    names = ["rmse", "mae", "r2", "mape", "median_ae"]
    values = compute_metrics("regression", names, Y_TRUE, Y_PRED)
    assert list(values) == names
    assert values["rmse"] == pytest.approx(math.sqrt(6 / 4))
    assert values["mae"] == pytest.approx(1.0)
    assert values["r2"] == pytest.approx(1 - 6 / 5)
    assert values["mape"] == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)
    assert values["median_ae"] == pytest.approx(1.0)
    assert all(type(value) is float for value in values.values())


def test_binary_metrics_match_hand_computed_values() -> None:
    names = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "brier"]
    values = compute_metrics(
        "binary", [*names, "log_loss"], LABELS, PREDICTED, PROBA, ["no", "yes"]
    )
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["recall"] == pytest.approx(1.0)
    assert values["f1"] == pytest.approx(0.8)
    assert values["roc_auc"] == pytest.approx(3 / 4)  # 3 of 4 (pos, neg) pairs ordered right
    assert values["brier"] == pytest.approx((0.01 + 0.36 + 0.04 + 0.36) / 4)
    expected_log_loss = -(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.4)) / 4
    assert values["log_loss"] == pytest.approx(expected_log_loss)
    assert all(type(value) is float for value in values.values())


def test_positive_class_is_the_second_of_classes() -> None:
    # classes reversed: "no" is now the positive class, the columns of proba follow classes.
    values = compute_metrics(
        "binary",
        ["precision", "recall", "roc_auc"],
        LABELS,
        PREDICTED,
        PROBA[:, ::-1],
        ["yes", "no"],
    )
    assert values["precision"] == pytest.approx(1.0)  # the one "no" predicted is right
    assert values["recall"] == pytest.approx(0.5)
    assert values["roc_auc"] == pytest.approx(3 / 4)


def test_binary_accepts_positive_class_probability_alone() -> None:
    values = compute_metrics("binary", ["roc_auc"], LABELS, PREDICTED, P_YES, ["no", "yes"])
    assert values["roc_auc"] == pytest.approx(3 / 4)


def test_multiclass_metrics_match_hand_computed_values() -> None:
    y_true = np.array(["a", "b", "c", "a"])
    y_pred = np.array(["a", "b", "b", "a"])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.4, 0.5], [0.6, 0.3, 0.1]])
    values = compute_metrics(
        "multiclass", ["accuracy", "f1_macro", "roc_auc", "log_loss"], y_true, y_pred, proba
    )
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert values["roc_auc"] == pytest.approx(1.0)  # every class ranked perfectly
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.5) + math.log(0.6)) / 4
    assert values["log_loss"] == pytest.approx(expected)


def test_every_spec_metric_is_supported() -> None:
    regression = compute_metrics("regression", list(REGRESSION_METRICS), Y_TRUE, Y_PRED)
    binary = compute_metrics("binary", list(CLASSIFICATION_METRICS), LABELS, PREDICTED, PROBA)
    assert not any(math.isnan(v) for v in [*regression.values(), *binary.values()])


@pytest.mark.parametrize(
    ("task", "metric", "y_true", "y_pred", "proba"),
    [
        (
            "binary",
            "roc_auc",
            np.array(["yes", "yes"]),
            np.array(["no", "yes"]),
            np.array([0.2, 0.9]),
        ),
        ("binary", "precision", np.array(["no", "yes"]), np.array(["no", "no"]), None),
        ("binary", "log_loss", LABELS, PREDICTED, None),
        ("regression", "r2", np.array([3.0]), np.array([2.0]), None),
        ("regression", "r2", np.array([3.0, 3.0]), np.array([2.0, 3.0]), None),
        ("regression", "mape", np.array([0.0, 1.0]), np.array([1.0, 1.0]), None),
        ("regression", "rmse", np.array([1.0, 2.0]), np.array([np.nan, 1.0]), None),
        (
            "multiclass",
            "roc_auc",
            np.array(["a", "b"]),
            np.array(["a", "b"]),
            np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]),
        ),
    ],
    ids=[
        "auc-one-class",
        "precision-no-positive-predicted",
        "log-loss-without-proba",
        "r2-one-row",
        "r2-constant-target",
        "mape-zero-target",
        "nan-prediction",
        "multiclass-auc-missing-class",
    ],
)
def test_undefined_metric_is_nan_not_an_error(
    task: str, metric: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None
) -> None:
    classes = (
        None
        if task == "regression"
        else (["a", "b", "c"] if task == "multiclass" else ["no", "yes"])
    )
    value = compute_metrics(task, [metric], y_true, y_pred, proba, classes)[metric]
    assert type(value) is float
    assert math.isnan(value)


def test_no_rows_gives_nan_for_every_metric() -> None:
    empty = np.array([], dtype=float)
    values = compute_metrics("regression", ["rmse", "mae"], empty, empty)
    assert all(math.isnan(v) for v in values.values())


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"metric 'auc' does not apply to task 'binary'.*roc_auc"):
        compute_metrics("binary", ["auc"], LABELS, PREDICTED)


def test_binary_only_metric_refused_for_multiclass() -> None:
    with pytest.raises(SpecError, match=r"'f1' is for binary tasks; use e.g. 'f1_macro'"):
        compute_metrics("multiclass", ["f1"], LABELS, PREDICTED)


def test_unknown_task() -> None:
    with pytest.raises(SpecError, match=r"unknown task 'ranking'"):
        compute_metrics("ranking", ["rmse"], Y_TRUE, Y_PRED)


def test_length_mismatch_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"one entry per evaluation row"):
        compute_metrics("regression", ["rmse"], Y_TRUE, Y_PRED[:3])


def test_proba_not_matching_classes_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"proba has shape \(4, 3\); expected \(4, 2\)"):
        compute_metrics("binary", ["roc_auc"], LABELS, PREDICTED, np.ones((4, 3)) / 3)


def test_binary_with_one_class_and_no_classes_asks_for_classes() -> None:
    one = np.array(["no", "no"])
    with pytest.raises(DataError, match=r"pass classes=model.classes_"):
        compute_metrics("binary", ["accuracy"], one, one)


def test_regression_baseline_predicts_the_training_mean() -> None:
    values, proba, classes = baseline_predictions(
        "regression", np.array([1.0, 2.0, 3.0, 6.0]), 3, seed=0
    )
    assert values.tolist() == [3.0, 3.0, 3.0]
    assert proba is None and classes is None


def test_classification_baseline_predicts_the_prior() -> None:
    values, proba, classes = baseline_predictions(
        "binary", np.array(["a", "b", "b", "b"]), 2, seed=0
    )
    assert values.tolist() == ["b", "b"]
    assert proba is not None and proba.tolist() == [[0.25, 0.75], [0.25, 0.75]]
    assert classes == ["a", "b"]
    scores = compute_metrics(
        "binary", ["roc_auc", "accuracy"], np.array(["a", "b"]), values, proba, classes
    )
    assert scores == {"roc_auc": 0.5, "accuracy": 0.5}


def test_baseline_needs_training_rows() -> None:
    with pytest.raises(DataError, match=r"no training rows"):
        baseline_predictions("regression", np.array([]), 3, seed=0)


@pytest.mark.parametrize(
    ("candidate", "reference", "higher", "expected"),
    [
        (10.0, 12.0, False, True),
        (12.0, 10.0, False, False),
        (0.9, 0.8, True, True),
        (0.8, 0.8, True, False),
        (math.nan, 0.8, True, False),
        (0.9, math.nan, True, False),
    ],
)
def test_is_better(candidate: float, reference: float, higher: bool, expected: bool) -> None:
    assert is_better("m", candidate, reference, higher_is_better=higher) is expected


def test_format_value() -> None:
    assert format_value(23456.78) == "23,457"
    assert format_value(12.345678) == "12.35"
    assert format_value(1.0) == "1"
    assert format_value(0.873456) == "0.8735"
    assert format_value(-0.2) == "-0.2"
    assert format_value(math.nan) == "nan"


def test_format_pair_shows_a_difference() -> None:
    assert format_pair(0.84996, 0.85) == ("0.84996", "0.85")
    assert format_pair(40000.4, 40000.0) == ("40,000.4", "40,000")
    assert format_pair(2.0, 2.0) == ("2", "2")
