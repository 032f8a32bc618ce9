"""The inferred spec's model against plain scikit-learn, on the same split.

``init`` should not leave a data scientist worse off than a plain
``HistGradientBoosting*(early_stopping=True)`` fitted on the raw table (categories
native, missing values native, dates as day numbers): on the Ames example and on
generated binary, multiclass and imbalanced tables its log loss (or RMSE) is within 1%
of that, or better. And a table the model cannot learn fails the default gates.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import log_loss, root_mean_squared_error

from _projects import run_cli
from modelyard.data.profile import suggest_spec
from modelyard.data.split import split_rows
from modelyard.features.build import plan_features
from modelyard.models.fit import build_pipeline, fit_pipeline, predict
from modelyard.spec import ProjectSpec

AMES = Path(__file__).parents[1] / "examples" / "house-prices" / "data" / "ames.csv.gz"


def generated(
    rows: int, *, classes: int, minority: float | None = None, seed: int = 5
) -> pd.DataFrame:
    """A table with a learnable label: numbers (some missing), categories, a date."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, rows)
    age = rng.integers(18, 80, rows).astype(float)
    debt = rng.gamma(2.0, 3000.0, rows)
    segment = rng.choice(["retail", "smb", "corporate", "public"], rows, p=[0.4, 0.3, 0.2, 0.1])
    channel = rng.choice(["web", "branch", "phone"], rows)
    opened = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")
    score = (
        -0.8 * np.log(income / 22000)
        + 0.00015 * debt
        - 0.02 * (age - 45)
        + np.select([segment == "smb", segment == "public"], [0.7, -0.5], 0.0)
        + 0.4 * (channel == "phone")
        + rng.logistic(0, 0.8, rows)
    )
    if classes == 2:
        share = 0.35 if minority is None else minority
        label = np.where(score > np.quantile(score, 1 - share), "default", "repaid")
    else:
        label = np.array(["a", "b", "c"])[np.digitize(score, np.quantile(score, [0.4, 0.75]))]
    income[rng.choice(rows, rows // 15, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "income": income.round(0),
            "age": age,
            "debt": debt.round(2),
            "segment": segment,
            "channel": channel,
            "opened": opened.strftime("%Y-%m-%d"),
            "label": label,
        }
    )


def _plain_frame(frame: pd.DataFrame, columns: list[str], dates: list[str]) -> pd.DataFrame:
    x = frame[columns].copy()
    for column in dates:
        x[column] = (pd.to_datetime(x[column]) - pd.Timestamp("2000-01-01")).dt.days
    for column in x.columns:
        if not pd.api.types.is_numeric_dtype(x[column]):
            x[column] = x[column].astype("category")
    return x


def _inferred_and_plain(frame: pd.DataFrame, target: str) -> tuple[float, float]:
    spec = ProjectSpec.model_validate(
        suggest_spec(frame, target=target, name="t", source_path="t.csv")
    )
    train, test = split_rows(
        frame, spec.split, target=target, task=spec.task, seed=spec.seed, timestamp_column=None
    )
    plan = plan_features(spec, frame)
    pipeline = build_pipeline(spec, plan)
    fit_pipeline(pipeline, frame.iloc[train], frame[target].iloc[train], spec=spec)
    ours = predict(pipeline, frame.iloc[test])
    x = _plain_frame(frame, list(plan.input_columns), list(plan.datetime))
    y = frame[target]
    options = {
        "early_stopping": True,
        "random_state": spec.seed,
        "categorical_features": "from_dtype",
    }
    if spec.task == "regression":
        plain_r = HistGradientBoostingRegressor(**options).fit(x.iloc[train], y.iloc[train])
        return (
            root_mean_squared_error(y.iloc[test], ours.values),
            root_mean_squared_error(y.iloc[test], plain_r.predict(x.iloc[test])),
        )
    plain_c = HistGradientBoostingClassifier(**options).fit(x.iloc[train], y.iloc[train])
    return (
        log_loss(y.iloc[test], ours.proba, labels=ours.classes),
        log_loss(y.iloc[test], plain_c.predict_proba(x.iloc[test]), labels=list(plain_c.classes_)),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "table",
    ["ames", "binary", "multiclass", "imbalanced"],
)
def test_inferred_model_is_as_good_as_plain_sklearn_with_early_stopping(table: str) -> None:
    if table == "ames":
        frame, target = pd.read_csv(AMES), "price"
    elif table == "binary":
        frame, target = generated(6000, classes=2), "label"
    elif table == "multiclass":
        frame, target = generated(6000, classes=3), "label"
    else:
        frame, target = generated(8000, classes=2, minority=0.08), "label"
    ours, plain = _inferred_and_plain(frame, target)
    assert ours <= 1.01 * plain, f"{table}: inferred {ours:.5g}, plain {plain:.5g}"


def test_unlearnable_table_fails_the_default_gates(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = 1500
    frame = pd.DataFrame(
        {
            "noise_a": rng.normal(size=rows),
            "noise_b": rng.integers(0, 50, rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "label": rng.choice(["yes", "no"], rows, p=[0.3, 0.7]),
        }
    )
    data = tmp_path / "coin.csv"
    frame.to_csv(data, index=False)
    home = tmp_path / "home"
    run_cli("init", str(data), "--target", "label", "--dir", str(tmp_path / "coin"), home=home)
    result = run_cli("train", str(tmp_path / "coin"), home=home, check=1)
    assert "log_loss beats baseline" in result.stdout
    assert re.search(r"FAIL\s+log_loss beats baseline", result.stdout), result.stdout
    assert "positive class: 'yes'" in result.stdout
