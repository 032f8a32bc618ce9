"""Bad input caught early, leaks and time order flagged: through the real command."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from _projects import read_spec, regression_project, run_cli, write_spec
from modelyard import api
from modelyard.settings import Settings


def _models(home: Path) -> list[object]:
    return json.loads(run_cli("models", "list", "--json", home=home).stdout)  # type: ignore[no-any-return]


def _init_json(data: Path, target: str, folder: Path, home: Path) -> dict[str, Any]:
    """``modelyard init DATA --target TARGET --dir FOLDER --json``, parsed."""
    result = run_cli(
        "init", str(data), "--target", target, "--dir", str(folder), "--json", home=home
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _set_params(project: Path, params: dict[str, object]) -> None:
    spec = read_spec(project)
    spec["model"] = {
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "params": params,
    }
    write_spec(project, spec)


def _break_header(project: Path) -> None:
    csv = project / "data" / "houses.csv"
    lines = csv.read_text().splitlines()
    lines[0] = lines[0].replace("rooms", "size")
    csv.write_text("\n".join(lines) + "\n")


def _nested_parquet(project: Path) -> None:
    frame = pd.read_csv(project / "data" / "houses.csv")
    frame["tags"] = [["garden"] if i % 2 else ["garage", "pool"] for i in range(len(frame))]
    frame.to_parquet(project / "data" / "houses.parquet")
    spec = read_spec(project)
    spec["data"]["source"] = {"path": "data/houses.parquet"}  # type: ignore[index]
    write_spec(project, spec)


def _blank(column: str) -> Callable[[Path], None]:
    def blank(project: Path) -> None:
        csv = project / "data" / "houses.csv"
        frame = pd.read_csv(csv)
        frame.loc[[3, 10], column] = np.nan
        frame.to_csv(csv, index=False)

    return blank


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            # checked before any data is read: the data file is gone, the parameter is named
            lambda p: (_set_params(p, {"max_iter": "many"}), (p / "data" / "houses.csv").unlink()),
            r"modelyard\.yaml:\d+ model\.params\.max_iter: The 'max_iter' parameter of "
            r"HistGradientBoostingRegressor must be an int in the range \[1, inf\)\. "
            r"Got 'many' instead",
        ),
        (
            lambda p: _set_params(p, {"learning_rate": -1}),
            r"modelyard\.yaml:\d+ model\.params\.learning_rate: .*must be a float in the "
            r"range \(0\.0, inf\)\. Got -1",
        ),
        (
            _break_header,
            r"houses\.csv: repeated column names \('size' at columns 2, 3; counting from 1\)",
        ),
        (
            _nested_parquet,
            r"column 'tags' holds nested values .*list them under features\.drop",
        ),
        (
            _blank("price"),
            r"the target 'price' is missing in 2 rows \(file lines 5, 12\); .*"
            r"data\.drop_missing_target: true",
        ),
        (
            _blank("year"),
            r"houses\.csv: the time split column 'year' is missing in 2 rows "
            r"\(file lines 5, 12\); a time split needs a time on every row",
        ),
        (
            lambda p: write_spec(
                p,
                {
                    **read_spec(p),
                    "data": {**read_spec(p)["data"], "columns": {"rooms": {"serving": False}}},  # type: ignore[dict-item]
                    "features": {"categorical": ["town"], "numeric": ["size", "rooms"]},
                },
            ),
            r"features\.numeric: 'rooms' is marked serving: false",
        ),
    ],
    ids=[
        "param-type",
        "param-range",
        "duplicate-header",
        "nested-column",
        "missing-target",
        "missing-time",
        "serving-false",
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, change: object, message: str
) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    change(project)  # type: ignore[operator]
    result = run_cli("train", str(project), home=home, check=2)
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr, re.DOTALL), result.stderr
    assert _models(home) == []


def test_nested_column_in_drop_is_dropped_and_unlabeled_rows_counted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    _nested_parquet(project)
    frame = pd.read_parquet(project / "data" / "houses.parquet")
    frame.loc[[3, 10], "price"] = np.nan
    frame.to_parquet(project / "data" / "houses.parquet")
    spec = read_spec(project)
    spec["data"]["drop_missing_target"] = True  # type: ignore[index]
    spec["features"]["drop"] = ["tags"]  # type: ignore[index]
    write_spec(project, spec)
    run_cli("train", str(project), home=home)
    shown = json.loads(run_cli("models", "show", "houses:1", "--json", home=home).stdout)
    assert shown["lineage"]["preparation"] == {
        "dropped_missing_target": 2,
        "nested_columns_as_text": ["tags"],
    }
    assert shown["lineage"]["data"]["rows"] == len(frame) - 2


def test_init_sniffs_a_latin1_semicolon_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = 300
    frame = pd.DataFrame(
        {
            "ville": rng.choice(["Genève", "Zürich", "Bâle"], rows),
            "surface": rng.uniform(20, 200, rows).round(1),
            "prix": rng.uniform(1e5, 1e6, rows).round(0),
        }
    )
    data = tmp_path / "biens.csv"
    frame.to_csv(data, sep=";", index=False, encoding="latin-1")
    home = tmp_path / "home"
    run_cli("init", str(data), "--target", "prix", "--dir", str(tmp_path / "p"), home=home)
    spec = read_spec(tmp_path / "p")
    assert spec["data"]["source"]["options"] == {"encoding": "cp1252", "sep": ";"}  # type: ignore[index]
    assert "ville" in spec["features"]["categorical"]  # type: ignore[index]
    # given explicitly, and wrong: a clear message, exit 2
    bad = run_cli(
        "init",
        str(data),
        "--target",
        "prix",
        "--dir",
        str(tmp_path / "q"),
        "--encoding",
        "utf-8",
        home=home,
        check=2,
    )
    assert "does not decode as utf-8" in bad.stderr and "Traceback" not in bad.stderr
    as_json = json.loads(
        run_cli(
            "init",
            str(data),
            "--target",
            "prix",
            "--dir",
            str(tmp_path / "r"),
            "--delimiter",
            ";",
            "--encoding",
            "latin-1",
            "--json",
            home=home,
        ).stdout
    )
    assert as_json["spec"]["data"]["source"]["options"] == {"encoding": "latin-1", "sep": ";"}


# -- leakage and time order -----------------------------------------------------------


def _churn(rows: int = 1200, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows).round(1)
    plan = rng.choice(["basic", "plus", "premium"], rows)
    score = -0.04 * tenure + (plan == "basic") + rng.normal(0, 0.7, rows)
    churned = np.where(score > np.quantile(score, 0.7), "yes", "no")
    return pd.DataFrame({"tenure": tenure, "plan": plan, "churned": churned})


def test_init_and_train_flag_planted_leaks(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    frame = _churn()
    rows = len(frame)
    # a noisy copy of the target, a flag computed from it, an id that encodes it
    frame["cancel_code"] = np.where(frame["churned"] == "yes", "C", "N")
    flip = rng.random(rows) < 0.01
    frame.loc[flip, "cancel_code"] = "C"
    order = np.argsort(frame["churned"].to_numpy(), kind="stable")
    frame["ticket_no"] = 0
    frame.loc[order, "ticket_no"] = 50_000 + np.arange(rows)
    data = tmp_path / "churn.csv"
    frame.to_csv(data, index=False)
    home = tmp_path / "home"
    run_cli("init", str(data), "--target", "churned", "--dir", str(tmp_path / "p"), home=home)
    text = (tmp_path / "p" / "modelyard.yaml").read_text()
    spec = yaml.safe_load(text)
    assert {"cancel_code", "ticket_no"} <= set(spec["features"]["drop"])
    assert "tenure" in spec["features"]["numeric"]
    assert re.search(r"# left out 'cancel_code' as a likely leak \(predicts_target\)", text)
    assert re.search(r"# left out 'ticket_no' as a likely leak \(identifier\)", text)
    assert spec["positive_class"] == "yes"

    # put the leaks back: train warns, and `leakage: fail` fails the gates
    spec["features"]["drop"] = []
    spec["features"]["numeric"] = ["tenure", "ticket_no"]
    spec["features"]["categorical"] = ["plan", "cancel_code"]
    spec["evaluation"]["leakage"] = "fail"
    (tmp_path / "p" / "modelyard.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("train", str(tmp_path / "p"), home=home, check=1)
    assert "possible target leak: 'cancel_code'" in result.stdout
    assert "possible target leak: 'ticket_no'" in result.stdout
    assert re.search(r"FAIL\s+no likely target leak", result.stdout)


def test_regression_leaks_noisy_copy_and_target_ratio(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = 1500
    area = rng.uniform(40, 250, rows)
    rooms = rng.integers(1, 7, rows)
    price = 2500 * area * rng.lognormal(0, 0.15, rows) + 9000 * rooms
    frame = pd.DataFrame(
        {
            "area": area.round(1),
            "rooms": rooms,
            "price_per_m2": (price / area).round(2),
            "appraisal": (price * rng.normal(1, 0.01, rows)).round(0),
            "price": price.round(0),
        }
    )
    frame["price_band"] = pd.qcut(frame["price"], 4, labels=["low", "mid", "high", "top"])
    data = tmp_path / "homes.csv"
    frame.to_csv(data, index=False)
    home = tmp_path / "home"
    init = _init_json(data, "price", tmp_path / "p", home)
    drop = init["spec"]["features"]["drop"]
    assert set(drop) == {"appraisal", "price_per_m2", "price_band"}
    assert init["spec"]["features"]["numeric"] == ["area", "rooms"]
    notes = " ".join(init["notes"]["features"])
    assert "'appraisal' as a likely leak (predicts_target): alone it predicts" in notes
    assert "'price_per_m2' as a likely leak (target_ratio): area × price_per_m2" in notes
    assert "'price_band' as a likely leak (derived_from_target): the target alone" in notes

    # put them back: train finds the same three on its training rows, with the fix
    spec = read_spec(tmp_path / "p")
    spec["features"] = {
        "numeric": ["area", "rooms", "price_per_m2", "appraisal"],
        "categorical": ["price_band"],
    }
    write_spec(tmp_path / "p", spec)
    result = run_cli("train", str(tmp_path / "p"), "--no-onnx", home=home)
    assert "Warnings (3)" in result.stdout
    for found in (
        "'appraisal': alone it predicts the target with R² 0.99",
        "'price_per_m2': area × price_per_m2 reproduces the target",
        "'price_band': the target alone predicts it",
    ):
        assert f"possible target leak: {found}" in result.stdout, result.stdout
    assert "add 'price_per_m2' to features.drop (or mark it serving: false)" in result.stdout


def test_time_ordered_panel_gets_a_time_split_and_train_warns_on_random(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    cities = [f"city_{i}" for i in range(12)]
    months = pd.date_range("2015-01-01", periods=60, freq="MS")
    frame = pd.DataFrame(
        [(city, month) for month in months for city in cities], columns=["city", "date"]
    )
    base = {city: rng.uniform(200, 900) for city in cities}
    trend = np.arange(len(frame)) // len(cities)
    frame["listings"] = rng.poisson(300, len(frame))
    frame["sales"] = (
        frame["city"].map(base) * (1 + 0.01 * trend) + rng.normal(0, 40, len(frame))
    ).round(0)
    frame["year"] = frame["date"].dt.year
    frame["month"] = frame["date"].dt.month
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    data = tmp_path / "sales.csv"
    frame.to_csv(data, index=False)
    home = tmp_path / "home"
    run_cli("init", str(data), "--target", "sales", "--dir", str(tmp_path / "p"), home=home)
    text = (tmp_path / "p" / "modelyard.yaml").read_text()
    spec = yaml.safe_load(text)
    assert spec["split"] == {"method": "time", "column": "date", "test_size": 0.2}
    assert re.search(
        r"# time split: 'date' holds dates .*'city' names\s+(# )?entities", text, re.DOTALL
    )
    assert (
        "# alternative, to evaluate on unseen city values instead: {method: group, column: city}"
        in text
    )

    spec["split"] = {"method": "random", "test_size": 0.2, "stratify": False}
    (tmp_path / "p" / "modelyard.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("train", str(tmp_path / "p"), home=home)
    assert "random split on data that looks ordered in time" in result.stdout
    assert "consider split: {method: time, column: date}" in result.stdout


def test_repeating_entity_gets_a_group_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    customers = rng.integers(1000, 1300, 1500)
    frame = pd.DataFrame(
        {
            "customer_id": customers,
            "amount": rng.gamma(2, 30, 1500).round(2),
            "channel": rng.choice(["web", "shop"], 1500),
        }
    )
    frame["returned"] = np.where(frame["amount"] + rng.normal(0, 20, 1500) > 70, "yes", "no")
    data = tmp_path / "orders.csv"
    frame.to_csv(data, index=False)
    home = tmp_path / "home"
    run_cli("init", str(data), "--target", "returned", "--dir", str(tmp_path / "p"), home=home)
    spec = read_spec(tmp_path / "p")
    assert spec["split"] == {"method": "group", "column": "customer_id", "test_size": 0.2}
    assert "customer_id" in spec["features"]["drop"]  # type: ignore[index]


def test_no_warning_on_clean_data_or_the_example(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_cli("quickstart", "--dir", str(tmp_path / "ames"), home=home)
    assert "Warnings" not in result.stdout and "possible target leak" not in result.stdout
    # nothing in production yet: the max_regression gate is skipped, not counted as passed
    assert "Gates: 4 passed, 1 skipped (of 5)" in result.stdout, result.stdout
    assert re.search(r"SKIP\s+rmse at most 5% worse than production", result.stdout)
    # the time shown is the evaluation's, and says so
    assert re.search(r"evaluation rows, evaluated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", result.stdout)
    data = tmp_path / "churn.csv"
    _churn().to_csv(data, index=False)
    init = _init_json(data, "churned", tmp_path / "p", home)
    assert "features" not in init["notes"]  # nothing left out
    result = run_cli("train", str(tmp_path / "p"), home=home)
    assert "Warnings" not in result.stdout


def test_reprs_of_a_train_result_and_a_version_are_short(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    project = regression_project(tmp_path / "houses")
    result = api.train(project, settings=settings, onnx=False)
    version = api.show(result.ref, settings=settings)
    # the report, spec and lineage they hold run to kilobytes; a repr names the outcome
    assert len(result.report.model_dump_json()) > 5_000
    assert len(repr(result)) < 300, repr(result)
    assert repr(result).startswith("TrainResult(ref='houses:1', passed=True, metrics={'rmse': ")
    assert len(repr(version)) < 300, repr(version)
    assert repr(version).startswith("ModelVersion(ref='houses:1', created_at='")


def test_serving_false_column_is_left_out_of_auto_features_and_refused_in_a_transform(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    spec = read_spec(project)
    spec["data"]["columns"] = {"rooms": {"serving": False, "reason": "counted after the sale"}}  # type: ignore[index]
    write_spec(project, spec)
    run_cli("train", str(project), "--no-onnx", home=home)
    shown = json.loads(run_cli("models", "show", "houses:1", "--json", home=home).stdout)
    assert shown["lineage"]["features"]["feature_order"] == ["size", "town"]

    spec["features"]["transforms"] = [  # type: ignore[index]
        {"kind": "ratio", "name": "size_per_room", "numerator": "size", "denominator": "rooms"}
    ]
    write_spec(project, spec)
    refused = run_cli("train", str(project), "--no-onnx", home=home, check=2)
    assert "Traceback" not in refused.stderr
    assert "the model would use 'rooms', marked serving: false" in refused.stderr
    assert [m["latest_version"] for m in _models(home)] == [1]  # type: ignore[index]


def test_evaluate_data_warns_only_on_training_rows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    run_cli("train", str(project), "--no-onnx", home=home)
    rows = pd.read_csv(project / "data" / "houses.csv")
    # the spec's time split evaluates on 2022: earlier rows were trained on
    rows[rows["year"] < 2022].head(40).to_csv(tmp_path / "seen.csv", index=False)
    rows[rows["year"] == 2022].head(40).to_csv(tmp_path / "new.csv", index=False)
    seen = run_cli("evaluate", "houses:1", "--data", str(tmp_path / "seen.csv"), home=home)
    assert "40 of the 40 rows were training rows of houses:1" in seen.stdout, seen.stdout
    assert "metrics on them are optimistic" in seen.stdout
    new = run_cli("evaluate", "houses:1", "--data", str(tmp_path / "new.csv"), home=home)
    assert "were training rows" not in new.stdout and "Warnings" not in new.stdout


def test_init_leaves_out_a_nested_column_and_refuses_repeated_names(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    _nested_parquet(project)
    data = project / "data" / "houses.parquet"
    init = _init_json(data, "price", tmp_path / "p", home)
    assert "tags" in init["spec"]["features"]["drop"]
    assert "'tags' holds nested values (lists, structs): left out" in init["notes"]["features"]

    _break_header(project)
    refused = run_cli(
        "init",
        str(project / "data" / "houses.csv"),
        "--target",
        "price",
        "--dir",
        str(tmp_path / "q"),
        home=home,
        check=2,
    )
    assert "Traceback" not in refused.stderr
    assert "repeated column names ('size' at columns 2, 3; counting from 1)" in refused.stderr
    assert not (tmp_path / "q").exists()
    assert _models(home) == []


def test_reports_compare_with_the_version_in_production(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    spec = read_spec(project)
    spec["evaluation"]["gates"].append({"metric": "rmse", "max_regression": 3.0})  # type: ignore[index]
    write_spec(project, spec)
    run_cli("train", str(project), "--no-onnx", home=home)
    run_cli("promote", "houses:1", "--reason", "first", home=home)
    spec["model"]["params"]["max_iter"] = 20  # type: ignore[index]
    write_spec(project, spec)
    trained = json.loads(run_cli("train", str(project), "--no-onnx", "--json", home=home).stdout)
    assert trained["production"]["ref"] == "houses:1"
    assert set(trained["production"]["metrics"]) == set(trained["metrics"])
    assert trained["diff"]["rows"] == trained["rows"]
    regression_gate = trained["gates"][-1]
    assert regression_gate["gate"] == "rmse at most 300% worse than production"
    assert not regression_gate["skipped"]

    text = run_cli("evaluate", "houses:2", "--html", str(tmp_path / "r.html"), home=home).stdout
    assert "production (houses:1)" in text and "Prediction diff houses:1 -> houses v2" in text
    assert "Lineage\n  data: data/houses.csv, snapshot " in text
    html = (tmp_path / "r.html").read_text()
    assert "<th>production (houses:1)</th>" in html and "snapshot" in html
