"""Feature plans, the preprocessor built from the spec, and the feature hash."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _projects import AMES_CSV
from modelyard.errors import SpecError
from modelyard.features.build import (
    FeaturePlan,
    build_preprocessor,
    feature_definition_hash,
    plan_features,
)
from modelyard.spec import ProjectSpec


def make_spec(features: dict[str, Any] | None = None, **top: Any) -> ProjectSpec:
    raw: dict[str, Any] = {
        "name": "houses",
        "task": "regression",
        "target": "price",
        "data": {"source": {"path": "houses.csv"}, "id_columns": ["id"]},
        "model": {"estimator": "sklearn.linear_model.Ridge"},
        "features": features or {},
    }
    raw.update(top)
    return ProjectSpec.model_validate(raw)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(8),
            "area": [50.0, 80.0, 120.0, np.nan, 65.0, 90.0, 70.0, 100.0],
            "rooms": [2, 3, 4, 3, 2, 3, 3, 4],
            "zone": ["RL", "RL", "RM", "RL", None, "RM", "RL", "FV"],
            "cls": [20, 20, 60, 20, 60, 20, 20, 60],
            "garage": [True, False, True, True, False, True, False, True],
            "sold": pd.to_datetime(["2010-01-05", "2010-02-10", "2011-03-15", "2011-04-20"] * 2),
            "price": [100.0, 150.0, 260.0, 170.0, 120.0, 190.0, 140.0, 230.0],
        }
    )


def fit(spec: ProjectSpec, frame: pd.DataFrame, project_dir: Path | None = None):
    plan = plan_features(spec, frame)
    pre = build_preprocessor(spec, plan, project_dir=project_dir)
    return plan, pre, pre.fit_transform(frame.drop(columns="price"))


def branch(pre, name: str) -> list[str]:
    names = pre.get_feature_names_out().tolist()
    return [n.split("__", 1)[1] for n in names if n.startswith(f"{name}__")]


class TestPlan:
    def test_auto_lists_exclude_target_ids_timestamp_and_drops(self, frame):
        spec = make_spec(
            {"drop": ["rooms"]},
            data={
                "source": {"path": "h.csv"},
                "id_columns": ["id"],
                "timestamp_column": "sold",
            },
        )
        plan = plan_features(spec, frame)
        assert plan.numeric == ["area", "cls"]
        assert plan.categorical == ["zone", "garage"]  # bool counts as categorical
        assert plan.datetime == []  # dates only through date_parts
        assert plan.input_columns == ["area", "cls", "zone", "garage"]
        assert plan.plain_numeric == ["area", "cls"]
        frame["empty"] = np.nan
        assert "empty" not in plan_features(spec, frame).input_columns

    def test_explicit_lists_win_over_dtypes(self, frame):
        spec = make_spec({"numeric": ["area"], "categorical": ["cls", "zone"]})
        plan = plan_features(spec, frame)
        assert plan.numeric == ["area"]
        assert plan.categorical == ["zone", "cls"]  # data order
        spec = make_spec({"categorical": ["cls"]})
        plan = plan_features(spec, frame)
        assert "cls" not in plan.numeric and "cls" in plan.categorical
        assert plan.numeric == ["area", "rooms"]

    def test_transform_inputs_become_inputs_and_consumed_ones_leave_plain(self, frame):
        spec = make_spec(
            {
                "numeric": ["rooms"],
                "transforms": [
                    {"kind": "log", "columns": ["area"]},
                    {"kind": "date_parts", "columns": ["sold"]},
                    {"kind": "ratio", "numerator": "rooms", "denominator": "area", "name": "r"},
                    {"kind": "cross", "columns": ["zone", "cls"], "name": "zc"},
                ],
            }
        )
        plan = plan_features(spec, frame)
        assert plan.numeric == ["area", "rooms", "cls"]  # cross keeps cls's own kind
        assert plan.categorical == ["zone", "garage"]
        assert plan.datetime == ["sold"]
        assert plan.plain_numeric == ["rooms", "r"]  # area is log'd; ratio inputs stay
        assert plan.plain_categorical[-1] == "zc"

    def test_id_like_categorical_columns_are_logged(self, frame, caplog):
        frame = pd.concat([frame] * 30, ignore_index=True)
        frame["serial"] = [f"S{i}" for i in range(len(frame))]
        with caplog.at_level("WARNING", logger="modelyard.features.build"):
            plan = plan_features(make_spec(), frame)
        assert "serial" in plan.categorical
        assert "'serial' has 240 distinct values in 240 rows" in caplog.text

    def test_missing_column_names_spec_key_and_close_match(self):
        ames = pd.read_csv(AMES_CSV, nrows=50)
        spec = make_spec(
            {
                "transforms": [
                    {"kind": "log", "columns": ["area"]},
                    {"kind": "power", "columns": ["Lot.Frontage"]},
                    {"kind": "bin", "columns": ["Lot.Aera"]},
                ]
            },
            data={"source": {"path": "ames.csv"}},
        )
        message = (
            r"^features\.transforms\.2\.columns: column 'Lot\.Aera' is not in the data; "
            r"did you mean 'Lot\.Area'\?$"
        )
        with pytest.raises(SpecError, match=message):
            plan_features(spec, ames)

    def test_every_problem_is_listed(self, frame):
        spec = make_spec(
            {
                "numeric": ["zone", "area"],
                "categorical": ["area"],
                "drop": ["romos"],
                "transforms": [
                    {"kind": "power", "columns": ["rooms"], "method": "box-cox"},
                    {"kind": "ratio", "numerator": "area", "denominator": "rooms", "name": "cls"},
                    {"kind": "date_parts", "columns": ["zone"]},
                ],
            }
        )
        with pytest.raises(SpecError) as info:
            plan_features(spec, frame)
        text = str(info.value)
        assert text.startswith("the features do not fit the data (")
        assert "features.drop.0: column 'romos' is not in the data; did you mean 'rooms'?" in text
        assert (
            "features.numeric: column 'zone' must be numeric but holds values such as 'RL'" in text
        )
        assert (
            "features.categorical: column 'area' is used as categorical here but as numeric" in text
        )
        assert "features.transforms.1.name: 'cls' is already a column" in text
        assert "features.transforms.2.columns: column 'zone' is used as datetime here" in text
        assert len(info.value.details) >= 5

    def test_box_cox_needs_positive_values(self, frame):
        frame.loc[0, "area"] = 0.0
        spec = make_spec(
            {"transforms": [{"kind": "power", "columns": ["area"], "method": "box-cox"}]}
        )
        with pytest.raises(SpecError, match=r"features\.transforms\.0\.method: box-cox needs"):
            plan_features(spec, frame)

    def test_a_listed_column_that_is_also_dropped(self, frame):
        spec = make_spec({"numeric": ["area"], "drop": ["area"]})
        with pytest.raises(
            SpecError, match=r"features\.numeric: column 'area' is also in features\.drop"
        ):
            plan_features(spec, frame)

    def test_no_features_left(self, frame):
        spec = make_spec({"drop": ["area", "rooms", "zone", "cls", "garage", "sold"]})
        with pytest.raises(SpecError, match=r"^features: no feature columns are left"):
            plan_features(spec, frame)

    def test_unparseable_date_parts_column(self, frame):
        frame["when"] = ["2010-01-01", "later"] * 4
        spec = make_spec({"transforms": [{"kind": "date_parts", "columns": ["when"]}]})
        with pytest.raises(
            SpecError, match=r"transforms\.0\.columns: column 'when' must hold dates"
        ):
            plan_features(spec, frame)


class TestPreprocessor:
    def test_default_branches_and_rare_and_unseen_categories(self, frame):
        spec = make_spec(
            {"categorical": ["zone"], "numeric": ["area"], "encode": {"min_frequency": 2}}
        )
        plan, pre, out = fit(spec, frame)
        assert [name for name, _ in pre.steps] == ["coerce", "columns"]
        # FV is seen once: grouped with the missing value (seen once) as infrequent.
        assert branch(pre, "categorical") == ["zone_RL", "zone_RM", "zone_infrequent_sklearn"]
        assert out.shape == (8, 4)
        assert out[3, 0] == 80.0  # median of the other areas fills the gap
        unseen = pre.transform(pd.DataFrame({"area": [60.0], "zone": ["C (all)"]}))
        assert unseen[0, 1:].tolist() == [0.0, 0.0, 1.0]  # unknown -> infrequent

    def test_unknown_error_and_plain_onehot(self, frame):
        spec = make_spec({"categorical": ["zone"], "numeric": [], "encode": {"unknown": "error"}})
        _, pre, out = fit(spec, frame)
        assert branch(pre, "categorical") == ["zone_FV", "zone_RL", "zone_RM", "zone___missing__"]
        with pytest.raises(ValueError, match="unknown categor"):
            pre.transform(pd.DataFrame({"zone": ["C (all)"]}))

    def test_ordinal_encoding_maps_unknown_to_minus_one(self, frame):
        spec = make_spec(
            {
                "categorical": ["zone", "cls"],
                "numeric": [],
                "encode": {"method": "ordinal"},
                "impute": {"categorical": "none"},
            }
        )
        _, pre, out = fit(spec, frame)
        assert out[:, 0].tolist() == [1.0, 1.0, 2.0, 1.0, -1.0, 2.0, 1.0, 0.0]
        new = pre.transform(pd.DataFrame({"zone": ["XX"], "cls": [20.0]}))
        assert new.tolist() == [[-1.0, 0.0]]  # 20.0 is the category "20"

    def test_impute_zero_none_indicator_and_scaling(self, frame):
        spec = make_spec(
            {
                "numeric": ["area"],
                "categorical": [],
                "impute": {"numeric": "zero", "add_indicator": True},
                "scale": "minmax",
            }
        )
        _, pre, out = fit(spec, frame)
        assert out[3].tolist() == [0.0, 1.0]  # zero-filled (the minimum) + indicator
        assert out[:, 0].max() == 1.0
        spec = make_spec({"numeric": ["area"], "categorical": [], "impute": {"numeric": "none"}})
        _, _, out = fit(spec, frame)
        assert np.isnan(out[3, 0])

    def test_each_transform_kind(self, frame):
        spec = make_spec(
            {
                "numeric": ["rooms"],
                "categorical": [],
                "transforms": [
                    {"kind": "log", "columns": ["area"]},
                    {"kind": "power", "columns": ["rooms"]},
                    {"kind": "bin", "columns": ["price_hint"], "bins": 2, "strategy": "uniform"},
                    {"kind": "date_parts", "columns": ["sold"], "parts": ["year", "month"]},
                    {"kind": "ratio", "numerator": "area", "denominator": "rooms", "name": "per"},
                    {"kind": "cross", "columns": ["zone", "cls"], "name": "zc"},
                ],
            }
        )
        frame["price_hint"] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        _, pre, out = fit(spec, frame)
        assert [name for name, _ in pre.steps] == ["coerce", "ratio_4", "cross_5", "columns"]
        names = pre.get_feature_names_out().tolist()
        assert names == [
            "numeric__per",  # rooms is consumed by the power transform
            "categorical__zc_FV|60",
            "categorical__zc_RL|20",
            "categorical__zc_RM|20",
            "categorical__zc_RM|60",
            "categorical__zc___missing__",
            "log_0__area",
            "power_1__rooms",
            "bin_2__price_hint",
            "date_parts_3__sold_year",
            "date_parts_3__sold_month",
        ]
        column = {name: out[:, i] for i, name in enumerate(names)}
        np.testing.assert_allclose(column["log_0__area"][0], np.log1p(50.0))
        assert column["numeric__per"][0] == 25.0
        assert column["bin_2__price_hint"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
        assert column["date_parts_3__sold_year"][:4].tolist() == [2010, 2010, 2011, 2011]
        assert abs(column["power_1__rooms"].mean()) < 1e-9  # standardised
        assert "numeric__area" not in names  # log consumed it

    def test_custom_transformer_from_the_project_folder(self, frame, tmp_path):
        (tmp_path / "house_features_a.py").write_text(CUSTOM_MODULE)
        spec = make_spec(
            {
                "numeric": [],
                "categorical": [],
                "transforms": [
                    {
                        "kind": "custom",
                        "columns": ["area", "rooms"],
                        "transformer": "house_features_a.Doubler",
                        "params": {"factor": 3.0},
                    }
                ],
            }
        )
        plan, pre, out = fit(spec, frame, project_dir=tmp_path)
        assert plan.numeric == ["area", "rooms"]
        assert out[0].tolist() == [150.0, 6.0]
        assert str(tmp_path) not in __import__("sys").path  # only on the path while importing

    @pytest.mark.parametrize(
        ("transformer", "params", "message"),
        [
            ("no_such_module_xyz.Thing", {}, r"transformer: cannot import .*no module named"),
            ("house_features_b.Doublr", {}, r"transformer: .*did you mean 'Doubler'\?"),
            ("house_features_b.helper", {}, r"transformer: 'house_features_b\.helper' is not a"),
            ("house_features_b.Doubler", {"factr": 2}, r"params: .*rejected .*'factr'"),
        ],
    )
    def test_custom_transformer_errors(self, frame, tmp_path, transformer, params, message):
        (tmp_path / "house_features_b.py").write_text(CUSTOM_MODULE)
        spec = make_spec(
            {
                "transforms": [
                    {
                        "kind": "custom",
                        "columns": ["area"],
                        "transformer": transformer,
                        "params": params,
                    }
                ]
            }
        )
        plan = plan_features(spec, frame)
        with pytest.raises(SpecError, match=r"features\.transforms\.0\." + message):
            build_preprocessor(spec, plan, project_dir=tmp_path)

    def test_ames_smoke(self):
        ames = pd.read_csv(AMES_CSV, nrows=400)
        spec = make_spec(
            {
                "encode": {"min_frequency": 10},
                "scale": "standard",
                "transforms": [
                    {"kind": "log", "columns": ["Lot.Area"]},
                    {"kind": "cross", "columns": ["MS.Zoning", "MS.SubClass"], "name": "zone_cls"},
                ],
            },
            data={"source": {"path": "ames.csv"}, "id_columns": ["Order", "PID"]},
        )
        plan, pre, out = fit(spec, ames)
        empty = [c for c in ames.columns if ames[c].isna().all()]
        assert empty == ["Pool.QC"]  # no value in these rows: left out
        assert len(plan.input_columns) == ames.shape[1] - 3 - len(empty)
        assert not np.isnan(out).any()
        again = pre.transform(ames.drop(columns="price").tail(5).to_dict(orient="list"))
        np.testing.assert_array_equal(again, out[-5:])


CUSTOM_MODULE = textwrap.dedent(
    """
    from sklearn.base import BaseEstimator, TransformerMixin


    class Doubler(TransformerMixin, BaseEstimator):
        def __init__(self, *, factor=2.0):
            self.factor = factor

        def fit(self, X, y=None):
            self.n_features_in_ = X.shape[1]
            return self

        def transform(self, X):
            return X.to_numpy(dtype=float) * self.factor


    def helper():
        return 1
    """
)


class TestFeatureHash:
    def spec(self, module: str, **features: Any) -> ProjectSpec:
        transform = {"kind": "custom", "columns": ["area"], "transformer": f"{module}.Doubler"}
        return make_spec({"transforms": [transform], **features})

    def test_hash_is_stable_and_follows_the_definition(self, frame, tmp_path):
        (tmp_path / "house_features_c.py").write_text(CUSTOM_MODULE)
        spec = self.spec("house_features_c")
        plan = plan_features(spec, frame)
        first = feature_definition_hash(spec, plan, project_dir=tmp_path)
        assert len(first) == 64
        assert feature_definition_hash(spec, plan, project_dir=tmp_path) == first
        scaled = self.spec("house_features_c", scale="standard")
        assert feature_definition_hash(scaled, plan, project_dir=tmp_path) != first
        other_model = spec.model_copy(update={"seed": 1})
        assert feature_definition_hash(other_model, plan, project_dir=tmp_path) == first
        fewer = FeaturePlan(**{**plan.to_dict(), "categorical": []})
        assert feature_definition_hash(spec, fewer, project_dir=tmp_path) != first

    def test_editing_user_code_changes_the_hash(self, frame, tmp_path):
        module = tmp_path / "house_features_d.py"
        module.write_text(CUSTOM_MODULE)
        spec = self.spec("house_features_d")
        plan = plan_features(spec, frame)
        build_preprocessor(spec, plan, project_dir=tmp_path)  # imports (and caches) it
        before = feature_definition_hash(spec, plan, project_dir=tmp_path)
        module.write_text(CUSTOM_MODULE.replace("* self.factor", "* self.factor + 1"))
        assert feature_definition_hash(spec, plan, project_dir=tmp_path) != before

    def test_unknown_module_is_a_spec_error(self, frame, tmp_path):
        spec = self.spec("house_features_missing")
        plan = plan_features(spec, frame)
        with pytest.raises(SpecError, match=r"features\.transforms\.0\.transformer: cannot find"):
            feature_definition_hash(spec, plan, project_dir=tmp_path)
