"""skops artifacts: round trips keep predictions; unknown types are refused."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import Ridge

from modelyard.errors import IntegrityError
from modelyard.features.build import plan_features
from modelyard.models.artifacts import dump_pipeline, load_pipeline
from modelyard.models.fit import build_pipeline, fit_pipeline, predict
from modelyard.spec import ProjectSpec


class ClipAbove(TransformerMixin, BaseEstimator):
    """A user transformer, as a project would define one."""

    def __init__(self, *, quantile: float = 0.9) -> None:
        self.quantile = quantile

    def fit(self, X: Any, y: Any = None) -> ClipAbove:
        self.limits_ = np.nanquantile(np.asarray(X, dtype=float), self.quantile, axis=0)
        self.n_features_in_ = len(self.limits_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.minimum(np.asarray(X, dtype=float), self.limits_)


def make_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    area = rng.gamma(4.0, 30.0, size=rows)
    return pd.DataFrame(
        {
            "area": area,
            "lot": area * rng.uniform(2, 5, size=rows),
            "rooms": rng.integers(1, 6, size=rows),
            "zone": rng.choice(["RL", "RM", "FV"], size=rows),
            "sold": pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), "D"),
            "price": area * 1000 + rng.normal(scale=5000, size=rows),
            "label": np.where(area > np.median(area), "big", "small"),
        }
    )


def fitted(model: dict[str, Any], *, task: str = "regression", **features: Any):
    target = "price" if task == "regression" else "label"
    spec = ProjectSpec.model_validate(
        {
            "name": "toy",
            "task": task,
            "target": target,
            "data": {"source": {"path": "toy.csv"}},
            "features": {"drop": ["label" if target == "price" else "price"], **features},
            "model": model,
        }
    )
    frame = make_frame()
    pipeline = build_pipeline(spec, plan_features(spec, frame))
    return fit_pipeline(pipeline, frame, frame[target], spec=spec), frame


ALL_TRANSFORMS = {
    "scale": "standard",
    "transforms": [
        {"kind": "log", "columns": ["lot"]},
        {"kind": "date_parts", "columns": ["sold"]},
        {"kind": "ratio", "numerator": "lot", "denominator": "area", "name": "lot_per_area"},
        {"kind": "cross", "columns": ["zone", "rooms"], "name": "zone_rooms"},
        {"kind": "custom", "columns": ["area"], "transformer": f"{__name__}.ClipAbove"},
    ],
}


@pytest.mark.parametrize(
    ("model", "task", "features", "expected_types"),
    [
        (
            {
                "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                "params": {"max_iter": 10},
            },
            "regression",
            {},
            ["modelyard.features.transformers.FrameCoercer"],
        ),
        (
            {"estimator": "lightgbm.LGBMRegressor", "params": {"n_estimators": 10}},
            "regression",
            {},
            ["lightgbm.basic.Booster", "lightgbm.sklearn.LGBMRegressor"],
        ),
        (
            {"estimator": "xgboost.XGBClassifier", "params": {"n_estimators": 10, "n_jobs": 1}},
            "binary",
            {},
            ["modelyard.models.estimators.LabelEncodedClassifier", "xgboost.core.Booster"],
        ),
        (
            {
                "estimator": "sklearn.ensemble.StackingClassifier",
                "params": {"cv": 3},
                "estimators": [
                    {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"},
                    {
                        "name": "tree",
                        "estimator": "sklearn.tree.DecisionTreeClassifier",
                        "params": {"max_depth": 3},
                    },
                ],
                "final_estimator": {"estimator": "sklearn.linear_model.LogisticRegression"},
            },
            "binary",
            {"scale": "standard"},
            ["modelyard.features.transformers.FrameCoercer"],
        ),
        (
            {"estimator": "sklearn.linear_model.Ridge"},
            "regression",
            ALL_TRANSFORMS,
            [
                "modelyard.features.transformers.Cross",
                "modelyard.features.transformers.DateParts",
                "modelyard.features.transformers.Log1pTransformer",
                "modelyard.features.transformers.Ratio",
                f"{__name__}.ClipAbove",
            ],
        ),
    ],
    ids=["hgb", "lightgbm", "xgboost-text-labels", "stacking", "all-transforms-and-custom"],
)
def test_round_trip_keeps_predictions(model, task, features, expected_types):
    pipeline, frame = fitted(model, task=task, **features)
    data, trusted = dump_pipeline(pipeline)
    assert trusted == sorted(trusted)
    assert set(expected_types) <= set(trusted)
    loaded = load_pipeline(data, trusted=trusted)
    rows = frame.drop(columns=["price", "label"]).sample(50, random_state=1)
    before, after = predict(pipeline, rows), predict(loaded, rows)
    np.testing.assert_array_equal(before.values, after.values)
    if before.proba is not None:
        np.testing.assert_array_equal(before.proba, after.proba)
        assert before.classes == after.classes


@pytest.fixture(scope="module")
def artifact() -> tuple[bytes, list[str]]:
    pipeline, _ = fitted({"estimator": "sklearn.linear_model.Ridge"}, **ALL_TRANSFORMS)
    return dump_pipeline(pipeline)


def test_a_type_missing_from_trusted_is_refused(artifact):
    data, trusted = artifact
    partial = [name for name in trusted if not name.endswith("ClipAbove")]
    with pytest.raises(
        IntegrityError, match=r"1 type\(s\) that were not recorded as trusted: .*ClipAbove"
    ) as info:
        load_pipeline(data, trusted=partial)
    assert info.value.details == [f"{__name__}.ClipAbove"]


def test_tampered_bytes_naming_another_type_are_refused(artifact):
    data, trusted = artifact
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "schema.json":
                content = content.replace(b'"ClipAbove"', b'"system"').replace(
                    f'"{__name__}"'.encode(), b'"os"'
                )
            target.writestr(item, content)
    tampered = buffer.getvalue()
    assert "os.system" in skops.io.get_untrusted_types(data=tampered)
    with pytest.raises(IntegrityError, match=r"not recorded as trusted: os\.system; refusing"):
        load_pipeline(tampered, trusted=trusted)


def test_garbage_and_non_pipelines_are_refused():
    with pytest.raises(IntegrityError, match="not a readable skops file"):
        load_pipeline(b"\x80\x04not a zip at all", trusted=[])
    bare = skops.io.dumps(Ridge().fit(np.eye(3), [1.0, 2.0, 3.0]))
    with pytest.raises(IntegrityError, match="holds a Ridge, not a scikit-learn Pipeline"):
        load_pipeline(bare, trusted=[])
