"""The routing policy's pure parts: validation, sticky buckets, rollback rule, combination."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import DataValidationError, ModelyardError
from modelyard.experiments.policy import (
    CompositePolicy,
    RollbackRule,
    bucket,
    combine,
    label_reward,
    parse_policy,
    rollback_reason,
)


def test_policies_are_checked_with_the_path_of_the_problem() -> None:
    with pytest.raises(ModelyardError, match=r"canary\.share"):
        parse_policy({"canary": {"ref": "a:2", "share": 2}})
    with pytest.raises(ModelyardError, match="shadw"):
        parse_policy({"shadw": {"ref": "a:2"}})
    with pytest.raises(ModelyardError, match="cannot share one name"):
        parse_policy(
            {
                "canary": {"ref": "a:2", "share": 0.1},
                "composite": {
                    "parts": [
                        {"ref": "a:1", "weight": "alpha", "default": 0.5},
                        {"ref": "b:1", "weight": "beta", "default": 0.5},
                    ]
                },
            }
        )
    with pytest.raises(ModelyardError, match="outside"):
        parse_policy(
            {
                "composite": {
                    "parts": [
                        {"ref": "a:1", "weight": "alpha", "default": 3},
                        {"ref": "b:1", "weight": "beta", "default": 0.5},
                    ]
                }
            }
        )
    policy = parse_policy({"shadow": {"ref": "a:2"}, "fallback": {"ref": "a:1"}})
    assert policy.refs() == {"shadow": "a:2", "fallback": "a:1"}


def test_buckets_are_sticky_and_uniform() -> None:
    assert bucket("key-1", "houses") == bucket("key-1", "houses") != bucket("key-1", "churn")
    draws = np.array([bucket(f"customer-{i}", "houses") for i in range(20000)])
    assert abs((draws < 0.1).mean() - 0.1) < 0.01 and draws.min() >= 0 and draws.max() < 1


def test_rollback_rule() -> None:
    rule = RollbackRule(max_error_rate=0.1, max_p95_ms=50, min_metric=0.4, min_requests=10)
    assert rollback_reason(rule, requests=9, errors=9, p95_ms=900) is None
    assert "error rate" in str(rollback_reason(rule, requests=10, errors=2, p95_ms=1))
    assert "p95" in str(rollback_reason(rule, requests=10, errors=0, p95_ms=51))
    assert "metric" in str(rollback_reason(rule, requests=10, errors=0, p95_ms=1, metric=0.3))
    assert rollback_reason(rule, requests=10, errors=1, p95_ms=50, metric=0.4) is None


def test_composite_weights_and_combination() -> None:
    composite = CompositePolicy.model_validate(
        {
            "parts": [
                {"ref": "a:1", "weight": "alpha", "default": 0.7},
                {"ref": "b:1", "weight": "beta", "default": 0.3, "max": 2},
            ]
        }
    )
    assert composite.weights({}) == [0.7, 0.3]
    assert composite.weights({"beta": 1.5}) == [0.7, 1.5]
    for bad in ({"alpha": 1.1}, {"beta": float("nan")}, {"gamma": 0.1}):
        with pytest.raises(DataValidationError):
            composite.weights(bad)
    values, proba = combine(
        [0.5, 2.0], [np.array([1.0, 2.0]), np.array([10.0, 20.0])], [None, None]
    )
    np.testing.assert_allclose(values, [20.5, 41.0])
    assert proba is None
    p1 = np.array([[0.9, 0.1], [0.4, 0.6]])
    p2 = np.array([[0.2, 0.8], [0.3, 0.7]])
    labels, proba = combine([1.0, 3.0], [np.zeros(2), np.zeros(2)], [p1, p2])
    np.testing.assert_allclose(proba, (p1 + 3 * p2) / 4)
    assert list(labels) == [1, 1]
    with pytest.raises(ModelyardError, match="mix"):
        combine([1, 1], [np.zeros(2), np.zeros(2)], [p1, None])


def test_labels_score_a_prediction_higher_when_it_is_better() -> None:
    assert label_reward("regression", 2.5, 4) == -1.5
    assert label_reward("regression", 2.5, "4.5") == -2.0
    assert label_reward("regression", 2.5, "many") is None  # cannot score it
    assert label_reward("regression", 2.5, float("inf")) is None
    # classes compare by their category texts: 1, 1.0 and "1" are one class
    assert label_reward("binary", 1, 1.0) == label_reward("binary", "1", 1) == 1.0
    assert label_reward("multiclass", "cat", "dog") == 0.0


def test_an_ab_test_declares_its_metric_and_whether_it_acts() -> None:
    policy = parse_policy(
        {"canary": {"ref": "a:2", "share": 0.5, "ab": {"mde": 1, "sigma": 2, "act": True}}}
    )
    assert policy.canary is not None and policy.canary.ab is not None
    assert (policy.canary.ab.metric, policy.canary.ab.act) == ("reward", True)
    with pytest.raises(ModelyardError, match="metric"):
        parse_policy(
            {"canary": {"ref": "a:2", "share": 0.5, "ab": {"mde": 1, "sigma": 2, "metric": "x"}}}
        )
