"""The skew check: logged outputs replayed through the reference pipeline.

End to end on a real prediction log (the served outputs agree; a runtime that rounds an
input does not), and on a classifier's labels and probabilities."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from modelyard import api
from modelyard.models.runtime import SklearnRuntime
from modelyard.monitoring.drift import MonitorConfig
from modelyard.monitoring.monitor import monitor
from modelyard.monitoring.skew import Replay, replay_tolerance, skew_check
from modelyard.monitoring.windows import parse_window
from modelyard.predlog import PredictionLog
from modelyard.predlog.tables import TRUNCATED
from modelyard.settings import Settings

from .conftest import DAY2, houses, log_rows

QUICK = MonitorConfig(multivariate_rows=0)


def test_served_outputs_match_the_pipeline(logged: Path) -> None:
    report = monitor(Settings(home=logged), "houses:1", window=parse_window("1d"), config=QUICK)
    windows = report.versions[0].windows
    assert [w.skew.rows for w in windows if w.skew] == [300, 300]
    assert not any(w.skewed for w in windows)
    assert windows[0].skew is not None and windows[0].skew.max_abs == 0.0


def test_a_runtime_that_computes_differently_is_caught(logged: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(logged, home)
    settings = Settings(home=home)
    pipeline = api.load_model("houses:1", settings=settings)
    day3 = DAY2 + pd.Timedelta(days=1)
    rows = houses(300, 3)

    class Rounding:  # a serving path that drops the decimals of "size"
        feature_names_in_ = pipeline.feature_names_in_

        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.asarray(pipeline.predict(frame.assign(size=frame["size"].round(-1))))

    with PredictionLog.open(settings, flush_seconds=3600) as predlog:
        log_rows(predlog, Rounding(), rows, day3, "c")
    report = monitor(settings, "houses:1", window=parse_window("1d"), config=QUICK, fail_on="skew")
    day1, day2, third = report.versions[0].windows
    assert not day1.skewed and not day2.skewed
    assert third.skew is not None and third.skewed
    # A tree model: rounding moves the rows near a split, half of them here.
    assert third.skew.mismatched > 100 and third.skew.tolerance == {"rtol": 1e-4, "atol": 1e-6}
    example = third.skew.examples[0]
    assert example["logged"] != example["pipeline"]
    assert report.drift  # --fail-on skew


@pytest.fixture(scope="module")
def classifier() -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"size": rng.uniform(0, 10, 400), "town": rng.choice(["a", "b", "c"], 400)}
    )
    label = np.where(frame["size"] + (frame["town"] == "a") * 3 > 6, "yes", "no")
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("town", OneHotEncoder(handle_unknown="ignore"), ["town"])],
                    remainder="passthrough",
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, label)
    return pipeline, frame


def test_classifier_labels_and_probabilities(classifier: tuple[Pipeline, pd.DataFrame]) -> None:
    pipeline, frame = classifier
    sample = frame.iloc[:100].reset_index(drop=True)
    proba = pipeline.predict_proba(sample)
    logged = sample.assign(
        prediction=pipeline.predict(sample), **{"proba.no": proba[:, 0], "proba.yes": proba[:, 1]}
    )
    replay = Replay(
        runtime=SklearnRuntime(pipeline, ["size", "town"]),
        features=["size", "town"],
        task="binary",
        tolerance=replay_tolerance("binary", {"tolerance": {"proba_atol": 1e-4}}),
    )
    same = skew_check(replay, logged, ["no", "yes"])
    assert (same.rows, same.mismatched, same.skew, same.labels_equal) == (100, 0, False, True)

    moved = logged.copy()
    moved.loc[3, "proba.yes"] += 0.01  # a probability off by more than 1e-4
    flipped = moved.loc[7, "prediction"]
    moved.loc[7, "prediction"] = "no" if flipped == "yes" else "yes"
    moved.loc[9, "town"] = "b" + TRUNCATED  # cut short in the log: not replayable
    found = skew_check(replay, moved, ["no", "yes"])
    assert (found.rows, found.skipped, found.mismatched) == (99, 1, 2)
    assert found.skew and found.labels_equal is False
    assert found.max_abs == pytest.approx(0.01, rel=1e-6)
