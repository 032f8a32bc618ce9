"""Stateful training: each supported estimator continues from its fitted state; the
others say why not; the production pipeline is never changed."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from modelyard.models.stateful import continuation_method, continue_fit
from modelyard.spec import ProjectSpec


def _spec(task: str) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {
            "name": "m",
            "task": task,
            "target": "y",
            "data": {"source": {"path": "d.csv"}},
            "model": {"estimator": "sklearn.linear_model.Ridge"},
        }
    )


def _rows(seed: int, count: int = 200) -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=count), "b": rng.normal(size=count)})
    return X, pd.Series(3 * X["a"] - X["b"] + rng.normal(0, 0.1, count), name="y")


def _fitted(estimator: Any, *, classify: bool = False) -> Pipeline:
    X, y = _rows(1)
    target = (y > 0).astype(int) if classify else y
    return Pipeline([("features", StandardScaler()), ("model", estimator)]).fit(X, target)


def _regressors() -> list[tuple[Any, str, str]]:
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import SGDRegressor
    from xgboost import XGBRegressor

    return [
        (HistGradientBoostingRegressor(max_iter=10, random_state=0), "warm_start", "n_iter_"),
        (RandomForestRegressor(n_estimators=5, random_state=0), "warm_start", "estimators_"),
        (SGDRegressor(random_state=0), "warm_start", "coef_"),
        (LGBMRegressor(n_estimators=10, verbose=-1), "init_model", "booster_"),
        (XGBRegressor(n_estimators=10), "xgb_model", "get_booster"),
    ]


@pytest.mark.parametrize(("estimator", "method", "_state"), _regressors())
def test_supported_estimators_continue_and_leave_production_as_it_was(
    estimator: Any, method: str, _state: str
) -> None:
    production = _fitted(estimator)
    frozen = pickle.dumps(production)
    X, y = _rows(2)
    before = production.predict(X)
    continued = continue_fit(production, X, y, spec=_spec("regression"))
    assert continued.continued and continued.method == method, continued.reason
    assert continued.pipeline is not None
    assert pickle.dumps(production) == frozen, "the production pipeline changed"
    assert continued.pipeline.named_steps["features"] is not production.named_steps["features"]
    after = continued.pipeline.predict(X)
    assert not np.allclose(before, after)
    assert np.mean((after - y) ** 2) <= np.mean((before - y) ** 2) * 1.05


def test_boosting_adds_trees_to_those_it_had() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    production = _fitted(HistGradientBoostingRegressor(max_iter=10, random_state=0))
    X, y = _rows(2)
    continued = continue_fit(production, X, y, spec=_spec("regression"))
    assert continued.pipeline is not None
    model = continued.pipeline.named_steps["model"]
    assert model.n_iter_ > 10 and model.warm_start is False


def test_lightgbm_keeps_the_production_trees() -> None:
    from lightgbm import LGBMRegressor

    production = _fitted(LGBMRegressor(n_estimators=10, verbose=-1))
    X, y = _rows(2)
    continued = continue_fit(production, X, y, spec=_spec("regression"))
    assert continued.pipeline is not None
    assert continued.pipeline.named_steps["model"].booster_.num_trees() == 20


def test_an_estimator_without_warm_start_is_not_continued_and_says_why() -> None:
    from sklearn.linear_model import Ridge

    production = _fitted(Ridge())
    X, y = _rows(2)
    continued = continue_fit(production, X, y, spec=_spec("regression"))
    assert not continued.continued and continued.pipeline is None
    assert continued.reason == "Ridge has no warm_start and no initial-model option"
    assert continuation_method(Ridge()) == ("none", continued.reason)


def test_a_class_the_model_never_saw_is_not_continued() -> None:
    from sklearn.linear_model import LogisticRegression

    production = _fitted(LogisticRegression(), classify=True)
    X, y = _rows(2)
    labels = pd.Series(np.where(y > 1, 2, (y > 0).astype(int)), name="y")
    continued = continue_fit(production, X, labels, spec=_spec("multiclass"))
    assert not continued.continued
    assert continued.reason == "the target has classes the model never saw: 2"
    same = continue_fit(copy.deepcopy(production), X, (y > 0).astype(int), spec=_spec("binary"))
    assert same.continued and same.method == "warm_start"
