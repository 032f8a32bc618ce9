"""Suggesting a project spec from data, as `modelyard init` does."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from _projects import AMES_CSV
from modelyard.data.profile import suggest_project, suggest_spec
from modelyard.data.sources import read_source
from modelyard.data.split import split_rows
from modelyard.errors import DataError
from modelyard.spec import DataSpec, ProjectSpec


def customers(rows: int = 300, *, classes: int = 2, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 10.0, rows).round(1)
    tickets = rng.poisson(2, rows)
    plan = rng.choice(["basic", "plus", "premium"], rows)
    score = 0.3 * tickets - 0.05 * tenure + (plan == "basic") + rng.normal(0, 0.5, rows)
    cuts = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    label = np.array(["low", "mid", "high", "top"])[np.digitize(score, cuts)][:rows]
    spend = rng.lognormal(3, 0.5, rows).round(2)
    spend[::17] = np.nan
    return pd.DataFrame(
        {
            "customer_id": rng.permutation(np.arange(1000, 1000 + rows)),
            "code": [f"C{n:06x}" for n in rng.permutation(rows * 7)[:rows]],
            "signup": (
                pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 500, rows), unit="D")
            )
            .strftime("%Y-%m-%d")
            .tolist(),
            "plan": plan,
            "region": rng.choice(["north", "south", None], rows),
            "comment": [f"note {n}" for n in rng.integers(0, rows, rows)],
            "tenure": tenure,
            "tickets": tickets,
            "spend": spend,
            "paid": rng.choice([True, False], rows),
            "empty": np.nan,
            "label": label,
        }
    )


@pytest.fixture
def csv_project(tmp_path: Path) -> Path:
    customers().to_csv(tmp_path / "customers.csv", index=False)
    return tmp_path


def test_classification_csv_to_valid_spec(csv_project: Path) -> None:
    frame = read_source(
        DataSpec.model_validate({"source": {"path": "customers.csv"}}), base_dir=csv_project
    )
    suggestion = suggest_spec(frame, target="label", name="churn", source_path="customers.csv")
    spec = ProjectSpec.model_validate(suggestion)
    assert spec.task == "binary" and spec.target == "label" and spec.seed == 42
    assert spec.data.source.path == "customers.csv"
    assert spec.data.id_columns == ["customer_id", "code"]
    assert spec.features.numeric == ["tenure", "tickets", "spend"]
    assert spec.features.categorical == ["plan", "region", "paid"]
    assert spec.features.drop == ["comment", "empty"]
    (transform,) = spec.features.transforms
    assert transform.kind == "date_parts" and transform.columns == ["signup"]
    # signup holds dates: evaluate on the latest rows, as the model will be used
    assert spec.split.method == "time" and spec.split.column == "signup"
    assert spec.split.test_size == 0.2
    assert spec.model.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert spec.model.params["early_stopping"] is True
    assert spec.evaluation.resolved_metrics("binary") == ["log_loss", "roc_auc", "accuracy", "f1"]
    assert spec.evaluation.primary_metric == "log_loss"
    assert [(g.metric, g.beat_baseline) for g in spec.evaluation.gates] == [
        ("log_loss", True),
        ("accuracy", True),
    ]
    counts = frame["label"].value_counts()
    assert spec.positive_class == counts.idxmin()


def test_suggestion_trains_as_is(csv_project: Path) -> None:
    frame = read_source(
        DataSpec.model_validate({"source": {"path": "customers.csv"}}), base_dir=csv_project
    )
    spec = ProjectSpec.model_validate(
        suggest_spec(frame, target="label", name="churn", source_path="customers.csv")
    )
    train, test = split_rows(
        frame, spec.split, target=spec.target, task=spec.task, seed=spec.seed, timestamp_column=None
    )
    numeric, categorical = list(spec.features.numeric), list(spec.features.categorical)
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    module, name = spec.model.estimator.rsplit(".", 1)
    estimator = getattr(importlib.import_module(module), name)(**spec.model.params)
    model = make_pipeline(columns, estimator)
    x = frame[numeric + categorical].astype({c: object for c in categorical})
    model.fit(x.iloc[train], frame[spec.target].iloc[train])
    assert model.score(x.iloc[test], frame[spec.target].iloc[test]) > 0.6


def test_multiclass_and_regression_tasks() -> None:
    three = suggest_spec(customers(classes=3), target="label", name="tiers", source_path="t.csv")
    assert three["task"] == "multiclass"
    three_spec = ProjectSpec.model_validate(three)
    assert [g.metric for g in three_spec.evaluation.gates] == ["log_loss", "accuracy"]
    assert three_spec.positive_class is None
    numeric = customers()
    regression = suggest_spec(numeric, target="tenure", name="tenure", source_path="t.csv")
    spec = ProjectSpec.model_validate(regression)
    assert spec.task == "regression" and spec.split.method == "time"
    assert spec.model.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert [g.metric for g in spec.evaluation.gates] == ["rmse", "mae"]
    assert "label" in spec.features.categorical


def test_few_distinct_numbers_are_classes() -> None:
    frame = pd.DataFrame({"x": range(60), "y": np.tile([1.0, 2.0, 3.0], 20)})
    frame["x"] = frame["x"] * 3 % 11
    assert suggest_spec(frame, target="y", name="n", source_path="n.csv")["task"] == "multiclass"
    frame["y"] = frame["y"].isin([1.0])
    assert suggest_spec(frame, target="y", name="n", source_path="n.csv")["task"] == "binary"


@pytest.mark.parametrize(
    ("name", "is_id"),
    [
        ("id", True),
        ("ID", True),
        ("user_id", True),
        ("userId", True),
        ("Parcel.ID", True),
        ("PID", True),
        ("paid", False),
        ("grid", False),
        ("valid", False),
    ],
)
def test_id_names(name: str, is_id: bool) -> None:
    frame = pd.DataFrame({name: np.arange(40) * 7 + 3, "x": np.arange(40) % 5, "y": [0, 1] * 20})
    suggestion = suggest_spec(frame, target="y", name="n", source_path="n.csv")
    assert (suggestion["data"]["id_columns"] == [name]) is is_id  # type: ignore[index]


def test_row_numbers_are_ids() -> None:
    frame = pd.DataFrame(
        {"row": range(1, 41), "n": range(5, 45), "x": np.arange(40) % 3, "y": [0, 1] * 20}
    )
    suggestion = suggest_spec(frame, target="y", name="n", source_path="n.csv")
    assert suggestion["data"]["id_columns"] == ["row"]  # type: ignore[index]
    assert suggestion["features"]["numeric"] == ["n", "x"]  # type: ignore[index]


def test_datetime_columns_get_date_parts() -> None:
    frame = pd.DataFrame(
        {"when": pd.date_range("2024-01-01", periods=40), "x": np.arange(40) % 4, "y": [0, 1] * 20}
    )
    suggestion = suggest_spec(frame, target="y", name="n", source_path="n.parquet")
    assert suggestion["features"]["transforms"] == [{"kind": "date_parts", "columns": ["when"]}]  # type: ignore[index]
    ProjectSpec.model_validate(suggestion)


def test_ames_profile() -> None:
    ames = pd.read_csv(AMES_CSV)
    suggested = suggest_project(
        ames, target="price", name="ames housing", source_path="data/ames.csv"
    )
    spec = ProjectSpec.model_validate(suggested.spec)
    # an honest table: no column left out as a leak; the sale year orders the rows
    assert suggested.leaks == [] and "features" not in suggested.notes
    assert (spec.split.method, spec.split.column) == ("time", "Yr.Sold")
    assert spec.name == "ames-housing" and spec.task == "regression"
    assert spec.data.id_columns == ["Order", "PID"]
    assert "Lot.Area" in spec.features.numeric and "Overall.Qual" in spec.features.numeric
    assert "Neighborhood" in spec.features.categorical and "MS.Zoning" in spec.features.categorical
    features = [*spec.features.numeric, *spec.features.categorical, *spec.features.drop]
    assert sorted([*features, *spec.data.id_columns, "price"]) == sorted(ames.columns)


def test_missing_target_suggests_close_names() -> None:
    frame = pd.DataFrame({"SalePrice": [1.0, 2.0], "x": [1, 2]})
    with pytest.raises(
        DataError, match=r"h\.csv: no target column 'saleprice'; did you mean 'SalePrice'"
    ):
        suggest_spec(frame, target="saleprice", name="h", source_path="h.csv")
    with pytest.raises(DataError, match=r"no target column 'zzz'; the columns are: SalePrice, x"):
        suggest_spec(frame, target="zzz", name="h", source_path="h.csv")


def test_unlearnable_targets() -> None:
    with pytest.raises(DataError, match="1 distinct value"):
        suggest_spec(
            pd.DataFrame({"x": [1, 2], "y": [3, 3]}), target="y", name="h", source_path="h.csv"
        )
    with pytest.raises(DataError, match="1 distinct value"):
        suggest_spec(
            pd.DataFrame({"x": [1, 2, 3], "y": [0, None, None]}),
            target="y",
            name="h",
            source_path="h.csv",
        )


def test_unlabeled_rows_are_dropped_by_the_spec() -> None:
    frame = pd.DataFrame({"x": np.arange(60) % 7, "y": [0, 1, None] * 20})
    suggestion = suggest_project(frame, target="y", name="h", source_path="h.csv")
    assert suggestion.spec["data"]["drop_missing_target"] is True  # type: ignore[index]
    assert any("20 rows have no 'y'" in note for note in suggestion.notes["data"])


def test_no_features_left() -> None:
    frame = pd.DataFrame({"id": range(10), "y": [0, 1] * 5})
    with pytest.raises(DataError, match=r"no column is left to learn 'y' from \(ids: \['id'\]"):
        suggest_spec(frame, target="y", name="h", source_path="h.csv")


def test_unusable_name_is_cleaned() -> None:
    frame = pd.DataFrame({"x": np.arange(40) % 3, "y": [0, 1] * 20})
    assert (
        suggest_spec(frame, target="y", name="  my data (v2)!", source_path="h.csv")["name"]
        == "my-data-v2"
    )
    assert suggest_spec(frame, target="y", name="***", source_path="h.csv")["name"] == "project"


def test_unknown_positive_class_is_refused(tmp_path: Path) -> None:
    from modelyard.data.prepare import read_project_rows

    pd.DataFrame({"x": range(10), "y": ["a", "b"] * 5}).to_csv(tmp_path / "d.csv", index=False)
    spec = ProjectSpec.model_validate(
        {
            "name": "n",
            "task": "binary",
            "target": "y",
            "positive_class": "c",
            "data": {"source": {"path": "d.csv"}},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )
    with pytest.raises(
        DataError,
        match=r"positive_class 'c' is not a class of the target 'y'; "
        r"its classes are 'a', 'b'",
    ):
        read_project_rows(spec, tmp_path)


def test_imbalance_is_noted_with_the_options_the_spec_can_set() -> None:
    rng = np.random.default_rng(7)
    rows = 1000
    frame = pd.DataFrame({"x": rng.normal(size=rows), "k": rng.choice(["a", "b"], rows)})
    frame["y"] = np.where(rng.random(rows) < 0.08, "fraud", "ok")
    binary = suggest_project(frame, target="y", name="h", source_path="h.csv")
    (note,) = binary.notes["target"]
    assert note.startswith("imbalanced classes: 'fraud' is 7.")
    assert "model.class_weight: balanced" in note
    assert "model.decision_threshold: {rule: f1}" in note
    assert binary.spec["positive_class"] == "fraud"
    spec = ProjectSpec.model_validate(binary.spec)
    assert [g.metric for g in spec.evaluation.gates] == ["log_loss", "f1"]

    frame["y"] = rng.choice(["a", "b", "rare"], rows, p=[0.5, 0.4, 0.1])
    multiclass = suggest_project(frame, target="y", name="h", source_path="h.csv")
    (note,) = multiclass.notes["target"]
    assert "model.class_weight: balanced" in note and "decision_threshold" not in note
    spec = ProjectSpec.model_validate(multiclass.spec)
    assert [g.metric for g in spec.evaluation.gates] == ["log_loss", "f1_macro"]
    balanced = suggest_project(
        frame.assign(y=rng.choice(["a", "b"], rows)), target="y", name="h", source_path="h.csv"
    )
    assert not balanced.notes.get("target")
