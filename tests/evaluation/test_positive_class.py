"""The positive class of a binary task decides what f1, recall and ROC AUC are about."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation.metrics import compute_metrics


def test_positive_class_points_binary_metrics_at_it() -> None:
    y_true = np.array(["good", "good", "good", "bad", "bad"])
    y_pred = np.array(["good", "good", "bad", "bad", "good"])
    proba = np.array([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1], [0.4, 0.6]])
    names = ["recall", "roc_auc", "log_loss", "accuracy"]
    default = compute_metrics("binary", names, y_true, y_pred, proba, ["bad", "good"])
    bad = compute_metrics("binary", names, y_true, y_pred, proba, ["bad", "good"], positive="bad")
    assert default["recall"] == pytest.approx(2 / 3)  # about "good", the second class
    assert bad["recall"] == pytest.approx(1 / 2)  # about "bad"
    assert bad["roc_auc"] == pytest.approx(default["roc_auc"])  # symmetric in the class
    assert bad["log_loss"] == default["log_loss"] and bad["accuracy"] == default["accuracy"]


def test_positive_class_matches_by_text() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    as_int = compute_metrics("binary", ["precision"], y_true, y_pred, None, [0, 1], positive=0)
    as_text = compute_metrics("binary", ["precision"], y_true, y_pred, None, [0, 1], positive="0")
    assert as_int == as_text == {"precision": 1.0}
