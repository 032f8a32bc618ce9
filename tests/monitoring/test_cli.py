"""``modelyard monitor`` and ``modelyard labels add`` end to end: a trained model, a real
prediction log, the real command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _projects import regression_project, run_cli
from modelyard import api
from modelyard.cli import run
from modelyard.predlog import PredictionLog, read_predictions
from modelyard.settings import Settings
from modelyard.types import RuntimeOutput

DAY1 = datetime(2025, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def houses(rows: int, seed: int, *, size_shift: float = 0.0) -> pd.DataFrame:
    """Rows like the training data of ``regression_project``, ``size`` shifted if asked."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "house_id": np.arange(rows) + 1000 * seed,
            "size": rng.uniform(40, 250, rows).round(1) + size_shift,
            "rooms": rng.integers(1, 7, rows),
            "town": rng.choice(["alpha", "beta", "gamma", "delta"], size=rows),
            "year": rng.choice([2019, 2020, 2021, 2022], size=rows),
        }
    )


def log_rows(predlog: PredictionLog, frame: pd.DataFrame, day: datetime, prefix: str) -> None:
    """Predict ``frame`` with houses:1 and log it as requests of 10 rows through the day."""
    pipeline = api.load_model("houses:1", settings=predlog_settings(predlog))
    features = list(pipeline.feature_names_in_)
    values = pipeline.predict(frame[features])
    for number, start in enumerate(range(0, len(frame), 10)):
        part = frame.iloc[start : start + 10]
        columns = {name: part[name].to_numpy() for name in features}
        predlog.log(
            model="houses",
            version=1,
            request_id=f"{prefix}{number}",
            received_at=day + timedelta(minutes=number),
            columns=columns,
            rows=len(part),
            output=RuntimeOutput(values=values[start : start + 10]),
            latency_ms=2.0,
            endpoint="predict",
        )


def predlog_settings(predlog: PredictionLog) -> Settings:
    return Settings(home=predlog._home)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with houses:1 trained, day 1 logged as in training, day 2 with size shifted."""
    tmp = tmp_path_factory.mktemp("monitor")
    home = tmp / "home"
    run_cli("train", str(regression_project(tmp / "houses")), "--no-onnx", home=home)
    settings = Settings(home=home)
    with PredictionLog.open(settings, flush_seconds=3600) as predlog:
        log_rows(predlog, houses(300, 1), DAY1, "a")
        log_rows(predlog, houses(300, 2, size_shift=60.0), DAY2, "b")
    return home


def test_monitor_finds_the_shifted_day_and_stores_the_profile(logged: Path) -> None:
    result = run_cli("monitor", "houses:1", "--window", "1d", "--json", home=logged, check=1)
    report = json.loads(result.stdout)
    assert report["drift"] is True
    (version,) = report["versions"]
    day1, day2 = version["windows"]
    assert day1["rows"] == day2["rows"] == 300
    assert day1["start"].startswith("2025-03-01") and day2["start"].startswith("2025-03-02")
    assert [c["column"] for c in day1["features"] if c["drift"]] == []
    assert "size" in [c["column"] for c in day2["features"] if c["drift"]]
    assert day2["prediction"]["drift"] is True

    shown = json.loads(run_cli("models", "show", "houses:1", "--json", home=logged).stdout)
    assert shown["artifacts"]["profile"]["digest"] == version["profile_digest"]
    # The stored profile is used from now on: same digest, same answer.
    again = run_cli("monitor", "houses", "--until", "2025-03-02", "--json", home=logged)
    assert json.loads(again.stdout)["versions"][0]["profile_digest"] == version["profile_digest"]
    assert json.loads(again.stdout)["drift"] is False

    text = run_cli("monitor", "houses:1", "--window", "300rows", home=logged, check=1).stdout
    assert "DRIFT" in text and "size" in text and "drift found" in text


def test_labels_late_twice_and_unmatched_join_into_performance(
    logged: Path, tmp_path: Path
) -> None:
    frame = read_predictions(Settings(home=logged), "houses", start=DAY2)
    first = frame.iloc[:50]
    early = pd.DataFrame({"request_id": first["request_id"], "row": first["row"], "label": 0.0})
    early.to_csv(tmp_path / "early.csv", index=False)
    added = run_cli(
        "labels", "add", str(tmp_path / "early.csv"), "--model", "houses", "--json", home=logged
    )
    assert json.loads(added.stdout)["stored"] == 50

    # Later, out of order: the right labels for the same rows (replacing), the same row
    # twice in one file (the last wins), and an id never predicted.
    right = first["prediction"].to_numpy() + 1000.0
    late = pd.DataFrame({"request_id": first["request_id"], "row": first["row"], "label": right})
    twice = late.iloc[[0]].assign(label=-5.0)
    never = pd.DataFrame({"request_id": ["nobody"], "row": [0], "label": [1.0]})
    pd.concat([twice, late, never]).to_parquet(tmp_path / "late.parquet")
    result = json.loads(
        run_cli(
            "labels",
            "add",
            str(tmp_path / "late.parquet"),
            "--model",
            "houses",
            "--json",
            home=logged,
        ).stdout
    )
    assert result == {
        "file": str(tmp_path / "late.parquet"),
        "model": "houses",
        "rows": 52,
        "stored": 51,
        "duplicates": 1,
        "replaced": 50,
        "unmatched": 1,
        "matched_by": "request_id",
    }

    report = json.loads(
        run_cli(
            "monitor",
            "houses:1",
            "--since",
            "2025-03-02",
            "--json",
            "--no-multivariate",
            home=logged,
            check=1,
        ).stdout
    )
    performance = report["versions"][0]["windows"][0]["performance"]
    assert performance["labelled_rows"] == 50
    assert performance["metrics"]["mae"] == pytest.approx(1000.0)
    assert performance["reference_metrics"]["mae"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "fortnight"], "--window 'fortnight' is not a window size"),
        (["--window", "0d"], "is not a window size"),
        (["--since", "yesterday"], "--since 'yesterday' is not a time"),
        (["--since", "2025-03-02", "--until", "2025-03-01"], "is not before --until"),
        (["--fail-on", "sometimes"], "--fail-on 'sometimes'"),
        (["--alpha", "2"], "alpha"),
    ],
)
def test_bad_usage_exits_2_with_a_message(
    logged: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(logged), "monitor", "houses:1", *args]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and "Traceback" not in stderr


def test_unknown_model_exits_2(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--home", str(logged), "monitor", "nohouses"]) == 2
    stderr = capsys.readouterr().err
    assert "nohouses" in stderr and "Traceback" not in stderr
