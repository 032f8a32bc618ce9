"""A live experiment's bookkeeping of labels (no server): each labelled row of a known
request counts once, for the arm that answered it."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import DataValidationError
from modelyard.experiments.policy import parse_policy
from modelyard.serving.live import LiveExperiment


def _judged_by(metric: str) -> LiveExperiment:
    ab = {"mde": 1.0, "sigma": 2.0, "metric": metric}
    return LiveExperiment(parse_policy({"canary": {"ref": "m:2", "share": 0.5, "ab": ab}}))


def test_labels_score_each_known_row_once_for_its_arm() -> None:
    live = _judged_by("labels")
    live.assign("r1", "canary")
    live.keep_output("r1", np.array([10.0, 20.0]))
    live.assign("r2", "primary")
    live.keep_output("r2", np.array([5.0]))
    assert live.label("r1", 1, 23.0, "regression") == ("canary", -3.0)
    assert live.label("r1", 1, 23.0, "regression") is None  # labelled before
    assert live.label("r1", 2, 1.0, "regression") is None  # no such row
    assert live.label("r9", 0, 1.0, "regression") is None  # not answered here
    assert live.label("r1", 0, "n/a", "regression") is None  # cannot score it
    assert live.label("r2", 0, "5", "regression") == ("primary", -0.0)
    assert live.rewards == {"canary": [-3.0], "primary": [-0.0]}
    with pytest.raises(DataValidationError, match="/v1/feedback"):
        live.reward("r2", 1.0)


def test_outputs_are_kept_only_when_labels_judge() -> None:
    live = _judged_by("reward")
    live.assign("r1", "canary")
    live.keep_output("r1", np.array([1.0]))
    assert not live.outputs and live.label("r1", 0, 1.0, "regression") is None
    assert live.reward("r1", 0.5) == "canary"
