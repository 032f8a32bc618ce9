"""Slice metrics: grouping, naming of values, order, shared classes, JSON."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import DataError
from modelyard.evaluation import MISSING_VALUE, SliceResult, slice_metrics


def test_slices_are_grouped_named_and_sorted() -> None:
    town = pd.Series(["B", "A", "B", None, "A", "C"], name="town", index=[10, 11, 12, 13, 14, 15])
    y_true = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y_pred = np.array([2.0, 2.0, 3.0, 7.0, 4.0, 6.0])
    results = slice_metrics(town, task="regression", metrics=["mae"], y_true=y_true, y_pred=y_pred)
    assert [(r.column, r.value, r.rows) for r in results] == [
        ("town", "A", 2),
        ("town", "B", 2),
        ("town", MISSING_VALUE, 1),
        ("town", "C", 1),
    ]
    assert [r.metrics["mae"] for r in results] == [0.5, 0.5, 3.0, 0.0]


def test_integer_values_with_gaps_are_not_shown_as_floats() -> None:
    rooms = pd.Series([3.0, np.nan, 3.0, 2.0], name="rooms")
    ones = np.ones(4)
    values = [
        r.value
        for r in slice_metrics(rooms, task="regression", metrics=["mae"], y_true=ones, y_pred=ones)
    ]
    assert values == ["3", MISSING_VALUE, "2"]


def test_small_slices_are_kept_and_flagged() -> None:
    group = pd.Series(["a"] * 5 + ["b"] * 2, name="g")
    y = np.arange(7, dtype=float)
    results = slice_metrics(
        group, task="regression", metrics=["rmse"], y_true=y, y_pred=y + 1, min_rows=3
    )
    assert [(r.value, r.rows, r.enough_rows) for r in results] == [("a", 5, True), ("b", 2, False)]
    assert results[1].metrics == {"rmse": 1.0}


def test_slices_share_the_positive_class_of_all_rows() -> None:
    segment = pd.Series(["x", "x", "y", "y"], name="segment")
    y_true = np.array(["no", "no", "no", "yes"])
    y_pred = np.array(["no", "yes", "no", "yes"])
    proba = np.array([0.2, 0.7, 0.1, 0.9])
    results = slice_metrics(
        segment,
        task="binary",
        metrics=["accuracy", "precision", "roc_auc"],
        y_true=y_true,
        y_pred=y_pred,
        proba=proba,
    )
    by_value = {r.value: r.metrics for r in results}
    # slice x holds only "no": AUC is undefined there, and "yes" stays the positive class
    assert math.isnan(by_value["x"]["roc_auc"])
    assert by_value["x"]["precision"] == 0.0
    assert by_value["x"]["accuracy"] == 0.5
    assert by_value["y"] == {"accuracy": 1.0, "precision": 1.0, "roc_auc": 1.0}


def test_slice_result_round_trips_through_json() -> None:
    [result] = slice_metrics(
        pd.Series(["a", "a"], name="g"),
        task="regression",
        metrics=["rmse"],
        y_true=np.array([1.0, 2.0]),
        y_pred=np.array([1.0, 4.0]),
    )
    assert SliceResult.model_validate(result.model_dump(mode="json")) == result
    assert SliceResult.model_validate_json(result.model_dump_json()) == result


def test_values_must_match_the_rows() -> None:
    with pytest.raises(DataError, match=r"slice column 'town' has 2 values for 3 rows"):
        slice_metrics(
            pd.Series(["a", "b"], name="town"),
            task="regression",
            metrics=["mae"],
            y_true=np.ones(3),
            y_pred=np.ones(3),
        )
