"""Estimators built from the spec: seeds, errors, ensembles, and their structure."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from modelyard.errors import MissingExtraError, SpecError
from modelyard.models.estimators import (
    LabelEncodedClassifier,
    build_estimator,
    class_path,
    estimator_structure,
)
from modelyard.spec import ModelSpec


def build(raw: dict, task: str = "regression", seed: int = 11):
    return build_estimator(ModelSpec.model_validate(raw), task=task, seed=seed)


STACKING = {
    "estimator": "sklearn.ensemble.StackingRegressor",
    "params": {"cv": 3},
    "estimators": [
        {
            "name": "forest",
            "estimator": "sklearn.ensemble.RandomForestRegressor",
            "params": {"n_estimators": 5},
        },
        {"name": "ridge", "estimator": "sklearn.linear_model.Ridge", "params": {"alpha": 2.0}},
    ],
    "final_estimator": {
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "params": {"random_state": 3},
    },
}


class TestBuild:
    def test_params_and_seed(self):
        forest = build(
            {"estimator": "sklearn.ensemble.RandomForestRegressor", "params": {"n_estimators": 7}}
        )
        assert forest.n_estimators == 7 and forest.random_state == 11
        given = build(
            {"estimator": "sklearn.ensemble.RandomForestRegressor", "params": {"random_state": 0}}
        )
        assert given.random_state == 0
        linear = build({"estimator": "sklearn.linear_model.LinearRegression"})
        assert "random_state" not in linear.get_params()  # nothing to seed

    def test_lightgbm_is_quiet_and_repeatable_by_default(self):
        model = build(
            {"estimator": "lightgbm.LGBMClassifier", "params": {"n_estimators": 5, "verbose": 1}},
            task="binary",
        )
        params = model.get_params()
        assert params["verbose"] == 1 and params["random_state"] == 11
        assert params["deterministic"] is True and params["force_col_wise"] is True
        assert params["n_jobs"] is None

    def test_xgboost_params_come_through_kwargs(self):
        model = build({"estimator": "xgboost.XGBRegressor", "params": {"n_estimators": 4}})
        assert model.n_estimators == 4 and model.random_state == 11
        with pytest.raises(SpecError, match=r"model\.params\.max_dept: .*did you mean 'max_depth'"):
            build({"estimator": "xgboost.XGBRegressor", "params": {"max_dept": 4}})

    def test_ensemble_members_are_built_recursively_with_seeds(self):
        stack = build(STACKING)
        forest, ridge = (member for _, member in stack.estimators)
        assert [name for name, _ in stack.estimators] == ["forest", "ridge"]
        assert forest.random_state == 11 and ridge.alpha == 2.0
        assert stack.final_estimator.random_state == 3
        assert stack.cv == 3

    @pytest.mark.parametrize(
        ("raw", "task", "message"),
        [
            (
                {"estimator": "sklearn.ensemble.RandomForrestRegressor"},
                "regression",
                r"^model\.estimator: module 'sklearn\.ensemble' has no 'RandomForrestRegressor'; "
                r"did you mean 'RandomForestRegressor'\?",
            ),
            (
                {"estimator": "sklearnx.linear_model.Ridge"},
                "regression",
                r"^model\.estimator: cannot import 'sklearnx\.linear_model\.Ridge': no module "
                r"named 'sklearnx'",
            ),
            (
                {"estimator": "os.path.join"},
                "regression",
                r"^model\.estimator: 'os\.path\.join' is not a scikit-learn estimator class",
            ),
            (
                {"estimator": "sklearn.linear_model.LogisticRegression"},
                "regression",
                r"^model\.estimator: .*is not a regressor but the task is regression",
            ),
            (
                {"estimator": "sklearn.linear_model.Ridge"},
                "binary",
                r"^model\.estimator: .*is not a classifier but the task is binary; use a "
                r"classifier such as 'sklearn\.ensemble\.HistGradientBoostingClassifier'",
            ),
            (
                {"estimator": "sklearn.linear_model.Ridge", "params": {"alpah": 1.0}},
                "regression",
                r"^model\.params\.alpah: Ridge has no hyperparameter 'alpah'; "
                r"did you mean 'alpha'\?",
            ),
            (
                {"estimator": "sklearn.linear_model.Ridge", "params": {"zzz": 1.0}},
                "regression",
                r"^model\.params\.zzz: .*its hyperparameters are: alpha, copy_X",
            ),
            (
                {"estimator": "sklearn.ensemble.StackingRegressor"},
                "regression",
                r"^model\.estimators: StackingRegressor needs member estimators",
            ),
            (
                {
                    "estimator": "sklearn.ensemble.VotingRegressor",
                    "params": {"estimators": []},
                },
                "regression",
                r"^model\.params\.estimators: give ensemble members as model\.estimators",
            ),
            (
                {
                    "estimator": "sklearn.linear_model.Ridge",
                    "estimators": [{"name": "a", "estimator": "sklearn.linear_model.Ridge"}],
                },
                "regression",
                r"^model\.estimators: Ridge takes no member estimators",
            ),
            (
                {
                    "estimator": "sklearn.ensemble.VotingClassifier",
                    "estimators": [
                        {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"},
                        {
                            "name": "bad",
                            "estimator": "sklearn.tree.DecisionTreeClassifier",
                            "params": {"max_dept": 3},
                        },
                    ],
                },
                "binary",
                r"^model\.estimators\.1\.params\.max_dept: .*did you mean 'max_depth'\?",
            ),
            (
                {"estimator": "sklearn.linear_model.Ridge", "params": {"solver": "magic"}},
                "regression",
                r"^model\.params\.solver: The 'solver' parameter of Ridge must be a str among "
                r"\{.*'lbfgs'.*\}\. Got 'magic' instead",
            ),
            (
                {"estimator": "sklearn.linear_model.Ridge", "params": {"alpha": 0.5}},
                "regression",
                None,
            ),
            (
                {
                    "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                    "params": {"max_iter": "many"},
                },
                "regression",
                r"^model\.params\.max_iter: .*must be an int in the range \[1, inf\)\. "
                r"Got 'many' instead",
            ),
            (
                {
                    "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                    "params": {"learning_rate": -1},
                },
                "regression",
                r"^model\.params\.learning_rate: .*must be a float in the range \(0\.0, inf\)",
            ),
            (
                {"estimator": "lightgbm.LGBMRegressor", "params": {"n_estimators": "many"}},
                "regression",
                r"^model\.params\.n_estimators: LGBMRegressor expects int for 'n_estimators', "
                r"got 'many'",
            ),
            (
                {"estimator": "lightgbm.LGBMRegressor", "params": {"learning_rate": 1}},
                "regression",
                None,  # an int is a float
            ),
            (
                {"estimator": "xgboost.XGBRegressor", "params": {"max_depth": "deep"}},
                "regression",
                r"^model\.params\.max_depth: XGBRegressor expects int \(or null\)",
            ),
        ],
    )
    def test_errors_name_the_spec_key(self, raw, task, message):
        if message is None:
            build(raw, task=task)
            return
        with pytest.raises(SpecError, match=message):
            build(raw, task=task)

    def test_missing_extra_names_the_install_command(self, monkeypatch):
        # A None entry in sys.modules makes Python treat the package as not installed.
        for name in [n for n in sys.modules if n == "lightgbm" or n.startswith("lightgbm.")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, "lightgbm", None)
        with pytest.raises(
            MissingExtraError,
            match=r"^model\.estimator: .*lightgbm is not installed; is lightgbm installed\? "
            r"run: pip install 'modelyard\[lightgbm\]'",
        ):
            build({"estimator": "lightgbm.LGBMRegressor"})


class TestStructure:
    def test_tree_is_json_with_public_class_paths(self):
        structure = estimator_structure(build(STACKING))
        text = json.dumps(structure, allow_nan=False)  # strict JSON
        assert structure["class"] == "sklearn.ensemble.StackingRegressor"
        members = structure["members"]
        assert [m["name"] for m in members] == ["forest", "ridge"]
        assert members[0]["class"] == "sklearn.ensemble.RandomForestRegressor"
        assert members[0]["params"]["n_estimators"] == 5
        assert members[0]["params"]["random_state"] == 11
        final = structure["final_estimator"]
        assert final["class"] == "sklearn.ensemble.HistGradientBoostingRegressor"
        assert "estimators" not in structure["params"]
        assert "final_estimator" not in structure["params"]
        assert "NaN" not in text

    def test_odd_values_are_made_json_safe(self):
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=float("nan"), tol=np.float32(0.5))  # a spec would refuse nan
        params = estimator_structure(model)["params"]
        assert params["alpha"] == "nan" and params["tol"] == 0.5
        json.dumps(params, allow_nan=False)

    def test_class_path(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        assert class_path(HistGradientBoostingClassifier) == (
            "sklearn.ensemble.HistGradientBoostingClassifier"
        )
        assert class_path(LabelEncodedClassifier) == "modelyard.models.LabelEncodedClassifier"


# scikit-learn's check_supervised_y_no_nan fits on a y holding inf; sklearn's own
# type_of_target (called by check_classification_targets) casts it to int before it
# checks finiteness, which warns "invalid value encountered in cast" just before it
# raises the ValueError the check expects.
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@parametrize_with_checks([LabelEncodedClassifier(estimator=LogisticRegression(max_iter=200))])
def test_label_encoded_classifier_passes_sklearn_checks(estimator, check):
    check(estimator)


def test_label_encoded_classifier_keeps_the_labels():
    X = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [2.1]])
    y = np.array([3, 3, 7, 7, 9, 9])
    model = LabelEncodedClassifier(estimator=LogisticRegression()).fit(X, y)
    assert model.classes_.tolist() == [3, 7, 9]
    assert model.estimator_.classes_.tolist() == [0, 1, 2]
    assert model.predict(X).tolist() == y.tolist()
    assert model.predict_proba(X).shape == (6, 3)
