"""The differential test on regression and classification predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import DataError
from modelyard.evaluation import PredictionDiff, diff_predictions


def test_regression_counts_changes_beyond_atol_only() -> None:
    old = np.array([1.0, 1.0, 1.0, 1.0])
    new = np.array([1.0, 1.5, 0.5, 1.75])  # changes 0, +0.5, -0.5, +0.75 (exact in binary)
    at_edge = diff_predictions(old, new, task="regression", atol=0.5)
    assert at_edge.changed == 1  # a change of exactly atol is no change
    assert at_edge.changed_share == 0.25
    below_edge = diff_predictions(old, new, task="regression", atol=0.25)
    assert below_edge.changed == 3


def test_regression_change_distribution() -> None:
    old = np.zeros(4)
    new = np.array([0.0, 2.0, -1.0, 3.0])
    diff = diff_predictions(old, new, task="regression", atol=0.0)
    stats = diff.change
    assert stats is not None
    assert (stats.mean, stats.min, stats.max) == (1.0, -1.0, 3.0)
    assert stats.std == pytest.approx(np.std([0.0, 2.0, -1.0, 3.0]))
    assert list(stats.quantiles) == ["p1", "p5", "p25", "p50", "p75", "p95", "p99"]
    assert stats.quantiles["p50"] == pytest.approx(1.5)  # median of |change| 0, 1, 2, 3
    assert stats.quantiles["p99"] == pytest.approx(2.97)


def test_top_rows_most_changed_first_ties_by_position_with_ids() -> None:
    old = np.zeros(6)
    new = np.array([1.0, -3.0, 0.0, 3.0, 2.0, 0.5])
    ids = pd.DataFrame(
        {"Id": [10, 11, 12, 13, 14, 15], "day": pd.date_range("2024-01-01", periods=6)}
    )
    diff = diff_predictions(old, new, task="regression", atol=0.6, ids=ids, top=3)
    assert diff.changed == 4
    assert [(r.position, r.change) for r in diff.top_rows] == [(1, -3.0), (3, 3.0), (4, 2.0)]
    first = diff.top_rows[0]
    assert first.ids is not None and first.ids["Id"] == 11
    assert str(first.ids["day"]).startswith("2024-01-02")
    assert (first.old, first.new) == (0.0, -3.0)


def test_top_rows_list_only_changed_rows() -> None:
    diff = diff_predictions(np.zeros(3), np.array([0.0, 1.0, 0.0]), task="regression", atol=0.1)
    assert [r.position for r in diff.top_rows] == [1]


def test_missing_predictions() -> None:
    old = np.array([np.nan, np.nan, 1.0])
    new = np.array([np.nan, 5.0, 1.0])
    diff = diff_predictions(old, new, task="regression", atol=0.0)
    assert diff.changed == 1  # missing on both sides is no change; appearing is
    row = diff.top_rows[0]
    assert (row.position, row.old, row.new) == (1, None, 5.0)
    assert math.isnan(row.change)


def test_classification_labels_and_transitions() -> None:
    old = np.array(["a", "a", "b", "b", "c", "a"])
    new = np.array(["a", "b", "b", "a", "c", "b"])
    diff = diff_predictions(old, new, task="multiclass", atol=0.0)
    assert diff.changed == 3 and diff.labels_changed == 3
    assert diff.transitions is not None
    assert [(t.old, t.new, t.count) for t in diff.transitions] == [("a", "b", 2), ("b", "a", 1)]
    assert diff.change is None
    assert [(r.position, r.old, r.new) for r in diff.top_rows] == [
        (1, "a", "b"),
        (3, "b", "a"),
        (5, "a", "b"),
    ]


def test_classification_probability_moves_and_atol_edge() -> None:
    old = np.array([0, 0, 1])
    new = np.array([0, 0, 0])
    old_proba = np.array([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75]])
    new_proba = np.array([[0.75, 0.25], [0.75, 0.25], [0.5, 0.5]])  # moves .25, 0, .25
    at_edge = diff_predictions(
        old, new, task="binary", atol=0.25, old_proba=old_proba, new_proba=new_proba
    )
    assert at_edge.changed == 1 and at_edge.labels_changed == 1  # only the label change counts
    below = diff_predictions(
        old, new, task="binary", atol=0.125, old_proba=old_proba, new_proba=new_proba
    )
    assert below.changed == 2
    # same probability move: the row whose label changed ranks first
    assert [(r.position, r.change) for r in below.top_rows] == [(2, 0.25), (0, 0.25)]
    assert below.change is not None and below.change.max == 0.25
    assert below.transitions is not None and below.transitions[0].model_dump() == {
        "old": 1,
        "new": 0,
        "count": 1,
    }


def test_diff_round_trips_through_json() -> None:
    diff = diff_predictions(
        np.array([True, False]),
        np.array([False, False]),
        task="binary",
        atol=0.0,
        ids=pd.DataFrame({"key": ["x", "y"]}),
    )
    assert PredictionDiff.model_validate(diff.model_dump(mode="json")) == diff
    assert diff.transitions is not None and diff.transitions[0].old is True


def test_different_lengths_are_a_data_error() -> None:
    with pytest.raises(DataError, match=r"shapes \(3,\) and \(2,\); both versions must score"):
        diff_predictions(np.zeros(3), np.zeros(2), task="regression", atol=0.0)


def test_ids_must_match_rows() -> None:
    with pytest.raises(DataError, match=r"ids has 1 rows for 2 predictions"):
        diff_predictions(
            np.zeros(2), np.zeros(2), task="regression", atol=0.0, ids=pd.DataFrame({"id": [1]})
        )


def test_probabilities_on_one_side_only_are_refused() -> None:
    with pytest.raises(DataError, match=r"give both old_proba and new_proba"):
        diff_predictions(
            np.zeros(2), np.zeros(2), task="binary", atol=0.0, old_proba=np.ones((2, 2))
        )


def test_probabilities_of_different_classes_are_refused() -> None:
    with pytest.raises(DataError, match=r"same classes in the same order"):
        diff_predictions(
            np.zeros(2),
            np.zeros(2),
            task="multiclass",
            atol=0.0,
            old_proba=np.ones((2, 2)) / 2,
            new_proba=np.ones((2, 3)) / 3,
        )


def test_no_rows() -> None:
    diff = diff_predictions(np.array([]), np.array([]), task="regression", atol=0.0)
    assert (diff.rows, diff.changed, diff.changed_share, diff.change, diff.top_rows) == (
        0,
        0,
        0.0,
        None,
        [],
    )
