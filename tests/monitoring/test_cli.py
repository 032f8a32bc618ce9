"""``modelyard monitor`` and ``modelyard labels add`` end to end: a trained model, a real
prediction log, the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from _projects import run_cli
from modelyard.cli import run
from modelyard.predlog import read_predictions
from modelyard.settings import Settings

from .conftest import DAY2


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
        (["--serve-metrics", "9", "--every", "10rows"], "--every '10rows' is not a duration"),
        (["--skew-rows", "-1"], "skew-rows"),
        (["--rules", "/nonexistent/rules.yaml"], "--rules /nonexistent/rules.yaml: no such file"),
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


def test_labels_by_the_models_id_columns(logged: Path, tmp_path: Path) -> None:
    # No request ids: the spec's id column (house_id), which the log recorded, and the
    # spec's target as the label column. Ids never logged are counted, not stored.
    labels = pd.DataFrame({"house_id": [1000, 1001, 999_999], "price": [1.0, 2.0, 3.0]})
    labels.to_csv(tmp_path / "by_id.csv", index=False)
    result = json.loads(
        run_cli(
            "labels",
            "add",
            str(tmp_path / "by_id.csv"),
            "--model",
            "houses",
            "--json",
            home=logged,
        ).stdout
    )
    assert result["matched_by"] == "house_id"
    assert (result["stored"], result["unmatched"]) == (2, 1)
    joined = read_predictions(Settings(home=logged), "houses", with_feedback=True)
    named = joined[joined["input.house_id"].isin([1000, 1001])].sort_values("input.house_id")
    assert named["label_float"].tolist() == [1.0, 2.0]


def test_no_rows_in_the_range_is_no_drift(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(logged)]
    assert run([*home, "monitor", "houses", "--since", "2030-01-01"]) == 0
    assert "no logged predictions of houses in the range" in capsys.readouterr().out
    assert run([*home, "monitor", "houses:1", "--since", "2030-01-01", "--json"]) == 0
    (version,) = json.loads(capsys.readouterr().out)["versions"]
    assert version["ref"] == "houses:1" and version["windows"] == []
