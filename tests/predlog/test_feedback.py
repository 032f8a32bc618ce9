"""Feedback: true labels stored as segments, joined to predictions, latest one wins."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from modelyard.errors import DataValidationError, ModelyardError
from modelyard.predlog import FeedbackItem, PredictionLog, read_feedback, read_predictions
from modelyard.settings import Settings

from .conftest import LogFn, at


@pytest.fixture
def logged(predlog: PredictionLog, log_regression: LogFn) -> None:
    log_regression("r1", rows=3, received_at=at(0))
    log_regression("r2", rows=2, received_at=at(1))
    predlog.flush()


def _labels(frame: pd.DataFrame) -> dict[tuple[str, int], object]:
    labelled = frame.dropna(subset=["label"])
    return {(r.request_id, r.row): r.label for r in labelled.itertuples()}


@pytest.mark.usefixtures("logged")
def test_feedback_is_joined_on_request_and_row(settings: Settings, predlog: PredictionLog) -> None:
    stored = predlog.record_feedback(
        "house-prices",
        [
            FeedbackItem("r1", 1500.0),
            FeedbackItem("r1", np.int64(2000), row=2),
            FeedbackItem("r2", "expensive", row=1),
            FeedbackItem("r2", True, row=0),
            FeedbackItem("unknown-request", 1.0),  # stored; joins to nothing
        ],
        received_at=at(60),
    )
    assert stored == 5

    frame = read_predictions(settings, "house-prices", with_feedback=True)

    assert len(frame) == 5
    assert _labels(frame) == {
        ("r1", 0): "1500",
        ("r1", 2): "2000",
        ("r2", 0): "True",
        ("r2", 1): "expensive",
    }
    by_key = frame.set_index(["request_id", "row"])
    assert by_key.loc[("r1", 0), "label_float"] == 1500.0
    assert by_key.loc[("r2", 0), "label_float"] == 1.0
    assert pd.isna(by_key.loc[("r2", 1), "label_float"])
    assert pd.isna(by_key.loc[("r1", 1), "label"])
    assert by_key.loc[("r1", 0), "feedback_at"] == pd.Timestamp(at(60))
    assert frame["prediction"].notna().all()


@pytest.mark.usefixtures("logged")
def test_the_latest_feedback_wins(settings: Settings, predlog: PredictionLog) -> None:
    predlog.record_feedback("house-prices", [FeedbackItem("r1", 10)], received_at=at(60))
    predlog.record_feedback("house-prices", [FeedbackItem("r1", 20)], received_at=at(120))
    # A backfill received earlier does not override newer feedback...
    predlog.record_feedback("house-prices", [FeedbackItem("r1", 5)], received_at=at(30))
    # ...and within one call, the last item for a row wins.
    stored = predlog.record_feedback(
        "house-prices", [FeedbackItem("r2", "a"), FeedbackItem("r2", "b")], received_at=at(60)
    )
    assert stored == 1

    frame = read_predictions(settings, "house-prices", with_feedback=True)
    assert _labels(frame) == {("r1", 0): "20", ("r2", 0): "b"}

    feedback = read_feedback(settings, "house-prices")
    assert feedback[["request_id", "row", "label"]].values.tolist() == [
        ["r2", 0, "b"],
        ["r1", 0, "20"],
    ]
    early = read_feedback(settings, "house-prices", end=at(61))
    assert early[["request_id", "label"]].values.tolist() == [["r1", "10"], ["r2", "b"]]


def test_invalid_feedback_is_refused_whole(settings: Settings, predlog: PredictionLog) -> None:
    items = [
        FeedbackItem("r1", 1.0),
        FeedbackItem("r1", float("nan"), row=1),
        FeedbackItem("", 1.0),
        FeedbackItem("r1", [1, 2], row=2),
        FeedbackItem("r1", 1.0, row=-1),
        FeedbackItem("r1", 1.0, row=2**31),
        FeedbackItem("r1", float("inf")),
        FeedbackItem("r1", 10**400),
        FeedbackItem("r1", "\ud800"),
        FeedbackItem("\udfff", 1.0),
        FeedbackItem("x" * 257, 1.0),
        FeedbackItem("r1", "y" * 10_001),
        FeedbackItem("r1", 2**31 - 1),
    ]
    with pytest.raises(
        DataValidationError, match=r"11 of 13 feedback items .* item 1 label"
    ) as err:
        predlog.record_feedback("house-prices", items)
    assert [(p["item"], p["field"]) for p in err.value.problems] == [
        (1, "label"),
        (2, "request_id"),
        (3, "label"),
        (4, "row"),
        (5, "row"),
        (6, "label"),
        (7, "label"),
        (8, "label"),
        (9, "request_id"),
        (10, "request_id"),
        (11, "label"),
    ]
    assert not (settings.home / "feedback").exists()
    assert read_feedback(settings, "house-prices").empty
    with pytest.raises(ModelyardError, match="not a valid model name"):
        predlog.record_feedback("../escape", [FeedbackItem("r1", 1.0)])


def test_feedback_segments_are_hive_partitioned(settings: Settings, predlog: PredictionLog) -> None:
    assert predlog.record_feedback("house-prices", []) == 0
    predlog.record_feedback("house-prices", [FeedbackItem("r1", 3.5)], received_at=at(0))

    tree = (settings.home / "feedback").as_posix() + "/**/*.parquet"
    rows = duckdb.sql(
        f"SELECT model, CAST(date AS VARCHAR), request_id, row, label, label_float "
        f"FROM read_parquet('{tree}', hive_partitioning=true)"
    ).fetchall()
    assert rows == [("house-prices", "2025-03-01", "r1", 0, "3.5", 3.5)]
