"""Every supported estimator converts with parity: regression, binary and multiclass.

The ``.onnx`` file is also checked as a user elsewhere would run it: the graph's own
label output (not only modelyard's runtime) gives the pipeline's labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest

from modelyard.export._runtime import build_feeds
from modelyard.export.onnx import columns_from_frame, export_pipeline
from modelyard.models.estimators import LabelEncodedClassifier
from modelyard.models.fit import predict

pytestmark = pytest.mark.filterwarnings("ignore:Skipping features without any observed")

LINEAR_FEATURES = {"scale": "standard", "encode": {"method": "onehot", "min_frequency": 10}}
CASES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "HistGradientBoostingRegressor": (
        "regression",
        "price",
        "sklearn.ensemble.HistGradientBoostingRegressor",
        {"max_iter": 30},
    ),
    "RandomForestRegressor": (
        "regression",
        "price",
        "sklearn.ensemble.RandomForestRegressor",
        {"n_estimators": 15, "min_samples_leaf": 2},
    ),
    "ExtraTreesRegressor": (
        "regression",
        "price",
        "sklearn.ensemble.ExtraTreesRegressor",
        {"n_estimators": 15},
    ),
    "GradientBoostingRegressor": (
        "regression",
        "price",
        "sklearn.ensemble.GradientBoostingRegressor",
        {"n_estimators": 30},
    ),
    "LinearRegression": ("regression", "price", "sklearn.linear_model.LinearRegression", {}),
    "Ridge": ("regression", "price", "sklearn.linear_model.Ridge", {"alpha": 3.0}),
    "LGBMRegressor": (
        "regression",
        "price",
        "lightgbm.LGBMRegressor",
        {"n_estimators": 40, "n_jobs": 1},
    ),
    "XGBRegressor": (
        "regression",
        "price",
        "xgboost.XGBRegressor",
        {"n_estimators": 40, "n_jobs": 1},
    ),
    "HistGradientBoostingClassifier binary": (
        "binary",
        "expensive",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 30},
    ),
    "HistGradientBoostingClassifier multiclass": (
        "multiclass",
        "band",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 30},
    ),
    "RandomForestClassifier": (
        "binary",
        "expensive",
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": 15},
    ),
    "ExtraTreesClassifier": (
        "multiclass",
        "band",
        "sklearn.ensemble.ExtraTreesClassifier",
        {"n_estimators": 15},
    ),
    "GradientBoostingClassifier": (
        "multiclass",
        "band",
        "sklearn.ensemble.GradientBoostingClassifier",
        {"n_estimators": 20},
    ),
    "LogisticRegression binary": (
        "binary",
        "expensive",
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 3000},
    ),
    "LogisticRegression multiclass": (
        "multiclass",
        "band",
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 3000},
    ),
    "LGBMClassifier": (
        "multiclass",
        "band",
        "lightgbm.LGBMClassifier",
        {"n_estimators": 30, "n_jobs": 1},
    ),
    "XGBClassifier with text labels": (
        "binary",
        "expensive",
        "xgboost.XGBClassifier",
        {"n_estimators": 30, "n_jobs": 1},
    ),
    "XGBClassifier multiclass text labels": (
        "multiclass",
        "band",
        "xgboost.XGBClassifier",
        {"n_estimators": 30, "n_jobs": 1},
    ),
}


def _graph_outputs(model: bytes, inputs: Any, rows: pd.DataFrame) -> list[Any]:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = build_feeds(inputs, columns_from_frame(rows, inputs), len(rows))
    return list(session.run(None, feeds))


@pytest.mark.parametrize("case", list(CASES))
def test_estimator_converts_with_parity(case: str, fit: Any, small_ames: pd.DataFrame) -> None:
    task, target, estimator, params = CASES[case]
    linear = estimator.startswith("sklearn.linear_model")
    result = fit(
        small_ames,
        task=task,
        target=target,
        model=estimator,
        params=params,
        features=LINEAR_FEATURES if linear else None,
    )
    exported = export_pipeline(result.pipeline, result.eval_frame, task=task)
    assert exported.parity.ok, exported.parity
    assert exported.parity.labels_equal is (None if task == "regression" else True)
    hist = "HistGradientBoosting" in estimator
    assert exported.precision == (
        "float64" if linear else "float64-splits" if hist else "float32-model"
    )

    rows = result.eval_frame
    outputs = _graph_outputs(exported.model, exported.inputs, rows)
    reference = predict(result.pipeline, rows)
    if task == "regression":
        np.testing.assert_allclose(outputs[0].ravel(), reference.values, rtol=1e-4)
        return
    assert exported.classes == reference.classes
    assert np.asarray(outputs[0]).ravel().tolist() == np.asarray(reference.values).tolist()
    np.testing.assert_allclose(outputs[1], reference.proba, atol=1e-4)


def test_xgboost_with_text_labels_is_wrapped_and_decoded(
    fit: Any, small_ames: pd.DataFrame
) -> None:
    result = fit(
        small_ames,
        task="multiclass",
        target="band",
        model="xgboost.XGBClassifier",
        params={"n_estimators": 5, "n_jobs": 1},
    )
    assert isinstance(result.pipeline.steps[-1][1], LabelEncodedClassifier)
    exported = export_pipeline(result.pipeline, result.eval_frame, task="multiclass")
    labels = _graph_outputs(exported.model, exported.inputs, result.eval_frame)[0]
    assert set(np.asarray(labels).ravel().tolist()) <= {"low", "mid", "high"}
    assert exported.classes == ["high", "low", "mid"]
