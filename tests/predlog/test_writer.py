"""PredictionLog: buffering, background flushing, bounds, and what lands in the segments."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from modelyard.errors import ModelyardError
from modelyard.models.runtime import SklearnRuntime
from modelyard.predlog import FeedbackItem, PredictionLog, read_predictions
from modelyard.predlog.tables import TRUNCATED, LoggedRequest, request_bytes
from modelyard.settings import Settings
from modelyard.types import ColumnBlocks, ColumnLayout, RuntimeOutput

from .conftest import T0, LogFn, at, house_columns


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _segments(settings: Settings) -> list[Path]:
    return sorted((settings.home / "predictions").glob("**/*.parquet"))


def test_regression_round_trip(
    settings: Settings, predlog: PredictionLog, log_regression: LogFn
) -> None:
    log_regression("r1", rows=3)
    log_regression("r2", rows=2, received_at=at(1.5), latency_ms=9.0, endpoint="invocations")
    predlog.flush()

    frame = read_predictions(settings, "house-prices")

    assert list(frame.columns) == [
        "request_id",
        "row",
        "received_at",
        "model",
        "version",
        "endpoint",
        "latency_ms",
        "input.area",
        "input.district",
        "input.built",
        "prediction",
    ]
    assert frame["request_id"].tolist() == ["r1", "r1", "r1", "r2", "r2"]
    assert frame["row"].tolist() == [0, 1, 2, 0, 1]
    assert frame["row"].dtype == np.int32 and frame["version"].dtype == np.int32
    assert frame["latency_ms"].dtype == np.float32
    assert frame["latency_ms"].tolist() == [4.25, 4.25, 4.25, 9.0, 9.0]
    assert frame["endpoint"].tolist() == ["predict"] * 3 + ["invocations"] * 2
    assert frame["received_at"].tolist() == [pd.Timestamp(T0)] * 3 + [pd.Timestamp(at(1.5))] * 2
    assert str(frame["received_at"].dt.tz) == "UTC"
    assert set(frame["model"]) == {"house-prices"} and set(frame["version"]) == {1}
    assert frame["prediction"].dtype == np.float64
    assert frame["prediction"].tolist() == [0.0, 1000.0, 2000.0, 0.0, 1000.0]
    # Missing inputs come back missing, whatever their kind.
    expected = house_columns(3)
    np.testing.assert_array_equal(frame["input.area"].to_numpy()[:3], expected["area"])
    assert frame["input.area"].isna().tolist()[:3] == [True, False, False]
    assert frame["input.district"].isna().tolist()[:3] == [False, True, False]
    assert frame["input.district"].iloc[2] == "d2"
    assert frame["input.built"].isna().tolist()[:3] == [False, False, True]
    assert frame["input.built"].iloc[1] == pd.Timestamp("2000-01-02")


def _tiny_classifier() -> tuple[SklearnRuntime, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    train = pd.DataFrame(
        {"area": rng.normal(100, 20, 80), "district": rng.choice(["n", "s", "e"], 80)}
    )
    label = np.where(train["area"] > 100, "dear", "cheap")
    label[:5] = "mid"
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", "passthrough", ["area"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["district"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(train, label)
    columns = {
        "area": np.array([70.0, 130.0, 101.0]),
        "district": np.array(["n", "s", "w"], dtype=object),
    }
    return SklearnRuntime(pipeline, ["area", "district"]), columns


def test_classifier_round_trip_with_a_real_pipeline(
    settings: Settings, predlog: PredictionLog
) -> None:
    runtime, columns = _tiny_classifier()
    output = runtime.predict(columns, 3)
    assert output.classes == ["cheap", "dear", "mid"] and output.proba is not None
    predlog.log(
        model="house-band",
        version=2,
        request_id="c1",
        received_at=T0,
        columns=columns,
        rows=3,
        output=output,
        latency_ms=1.0,
        endpoint="predict",
    )
    predlog.flush()

    frame = read_predictions(settings, "house-band")

    assert frame["prediction"].tolist() == list(output.values)
    assert [c for c in frame.columns if c.startswith("proba.")] == [
        "proba.cheap",
        "proba.dear",
        "proba.mid",
    ]
    np.testing.assert_array_equal(
        frame[["proba.cheap", "proba.dear", "proba.mid"]].to_numpy(), output.proba
    )
    assert frame["input.district"].tolist() == ["n", "s", "w"]


def test_numeric_class_labels_are_written_as_text(
    settings: Settings, predlog: PredictionLog
) -> None:
    predlog.log(
        model="churn",
        version=1,
        request_id="n1",
        received_at=T0,
        columns={"tenure": np.array([1.0, 2.0])},
        rows=2,
        output=RuntimeOutput(
            values=np.array([1, 0]),
            proba=np.array([[0.2, 0.8], [0.9, 0.1]]),
            classes=[np.int64(0), np.int64(1)],
        ),
        latency_ms=1.0,
        endpoint="predict",
    )
    predlog.flush()

    frame = read_predictions(settings, "churn")

    assert frame["prediction"].tolist() == ["1", "0"]
    assert frame["proba.1"].tolist() == [0.8, 0.1]


def test_many_threads_logging_at_once_lose_nothing(settings: Settings) -> None:
    threads, requests, rows = 8, 150, 2
    log = PredictionLog.open(settings, flush_rows=200, flush_seconds=0.05)
    # The workers log half their requests, wait until the background thread has written
    # what was waiting, then log the rest. Without the pause, whether the flusher takes
    # rows while the workers still log is up to the scheduler (8 threads log 2,400 rows in
    # a few tens of milliseconds; the flusher, woken at 200 rows, must win the GIL and the
    # buffer lock first), and "flushed in the background" would be a race, not a fact.
    halfway = threading.Barrier(threads + 1)
    resume = threading.Event()

    def client(worker: int) -> None:
        for number in range(requests):
            if number == requests // 2:
                halfway.wait(timeout=60)
                resume.wait(timeout=60)
            log.log(
                model="house-prices",
                version=1 + number % 2,
                request_id=f"w{worker}-{number}",
                received_at=datetime.now(UTC),
                columns=house_columns(rows, offset=number),
                rows=rows,
                output=RuntimeOutput(values=np.full(rows, float(worker))),
                latency_ms=0.5,
                endpoint="predict",
            )

    workers = [threading.Thread(target=client, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    halfway.wait(timeout=60)
    # the first halves, over flush_rows, are written by the background thread alone
    assert _wait_for(lambda: log.stats().pending_rows == 0)
    first = log.stats()
    assert first.written_rows == threads * requests * rows // 2
    assert first.written_segments >= 2  # versions 1 and 2: one segment each at least
    resume.set()
    for worker in workers:
        worker.join()
    log.close()

    frame = read_predictions(settings, "house-prices")
    stats = log.stats()
    total = threads * requests * rows
    assert len(frame) == total
    assert not frame.duplicated(["request_id", "row"]).any()
    assert stats.written_rows == total and stats.dropped_rows == 0 and stats.failed_rows == 0
    assert stats.pending_rows == 0 and stats.unindexed_segments == 0
    assert stats.written_segments >= first.written_segments + 2
    assert len(_segments(settings)) == stats.written_segments


def test_flushes_when_flush_rows_are_waiting(settings: Settings) -> None:
    with PredictionLog.open(settings, flush_rows=10, flush_seconds=3600) as log:
        log.log(**_request("a", rows=6))
        time.sleep(0.2)
        assert _segments(settings) == []  # below the size trigger, long timer: waits
        log.log(**_request("b", rows=6))
        assert _wait_for(lambda: log.stats().written_rows == 12)
        assert len(_segments(settings)) == 1


def test_flushes_every_flush_seconds(settings: Settings) -> None:
    with PredictionLog.open(settings, flush_rows=1_000_000, flush_seconds=0.1) as log:
        log.log(**_request("a", rows=1))
        assert _wait_for(lambda: log.stats().written_rows == 1, seconds=5)
        log.log(**_request("b", rows=1))
        assert _wait_for(lambda: log.stats().written_rows == 2, seconds=5)
    assert len(read_predictions(settings, "house-prices")) == 2


def test_close_flushes_and_is_idempotent(settings: Settings) -> None:
    log = PredictionLog.open(settings, flush_rows=1_000_000, flush_seconds=3600)
    log.log(**_request("a", rows=4))
    log.close()
    log.close()

    assert len(read_predictions(settings, "house-prices")) == 4
    log.log(**_request("late", rows=2))  # after close: dropped, counted, no error
    assert log.dropped_rows == 2
    with pytest.raises(ModelyardError, match="prediction log is closed"):
        log.record_feedback("house-prices", [])


def test_rows_beyond_max_buffer_rows_are_dropped_and_counted(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with PredictionLog.open(
        settings, flush_rows=1_000_000, flush_seconds=3600, max_buffer_rows=10
    ) as log:
        for number in range(4):
            log.log(**_request(f"r{number}", rows=3))  # the 4th would make 12 > 10
        log.log(**_request("fits", rows=1))
        assert log.dropped_rows == 3
        assert log.stats().pending_rows == 10
        with caplog.at_level(logging.WARNING, logger="modelyard.predlog.writer"):
            log.flush()
    assert "dropped 3 rows" in caplog.text and "max_buffer_rows=10" in caplog.text
    frame = read_predictions(settings, "house-prices")
    assert sorted(frame["request_id"].unique()) == ["fits", "r0", "r1", "r2"]


def test_bad_requests_never_raise_and_are_counted(
    settings: Settings, predlog: PredictionLog, log_regression: LogFn
) -> None:
    log_regression("short-input", rows=3, columns={"area": np.array([1.0])})
    log_regression("short-output", rows=3, output=RuntimeOutput(values=np.array([1.0])))
    log_regression("no-time", rows=2, received_at="yesterday")
    log_regression("bad-version", rows=2, version="one")
    log_regression("good", rows=2)
    predlog.flush()

    frame = read_predictions(settings, "house-prices")
    assert frame["request_id"].unique().tolist() == ["good"]
    assert predlog.stats().failed_rows == 3 + 3 + 2 + 2


def test_naive_received_at_is_utc_and_zero_rows_are_ignored(
    settings: Settings, predlog: PredictionLog, log_regression: LogFn
) -> None:
    log_regression("naive", rows=1, received_at=datetime(2025, 3, 1, 12, 0))
    log_regression("empty", rows=0, columns={}, output=RuntimeOutput(values=np.array([])))
    predlog.flush()

    frame = read_predictions(settings, "house-prices")
    assert frame["request_id"].tolist() == ["naive"]
    assert frame["received_at"].iloc[0] == pd.Timestamp(T0)


def test_one_segment_per_model_version_and_day_per_flush(
    settings: Settings, predlog: PredictionLog, log_regression: LogFn
) -> None:
    late = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
    log_regression("a", received_at=late)
    log_regression("b", received_at=late + timedelta(seconds=2))  # next day
    log_regression("c", received_at=late, version=2)
    log_regression("d", received_at=late, model="churn")
    log_regression("e", received_at=late)
    predlog.flush()

    folders = [p.parent.relative_to(settings.home).as_posix() for p in _segments(settings)]
    assert sorted(folders) == [
        "predictions/model=churn/version=1/date=2025-03-01",
        "predictions/model=house-prices/version=1/date=2025-03-01",
        "predictions/model=house-prices/version=1/date=2025-03-02",
        "predictions/model=house-prices/version=2/date=2025-03-01",
    ]
    # Written whole, then renamed: no temporary file is left next to the segments.
    assert [p for p in (settings.home / "predictions").rglob("*") if p.name.startswith(".")] == []


def test_long_texts_are_stored_cut_and_marked(settings: Settings) -> None:
    with PredictionLog.open(
        settings, flush_rows=1_000_000, flush_seconds=3600, max_text_chars=10
    ) as log:
        request = _request("long", rows=3)
        columns = dict(request["columns"])  # type: ignore[call-overload]
        columns["district"] = np.array(["é" * 5000, "short", None], dtype=object)
        log.log(**{**request, "columns": columns})
    frame = read_predictions(settings, "house-prices")
    assert frame["input.district"].tolist()[:2] == ["é" * 10 + TRUNCATED, "short"]
    assert pd.isna(frame["input.district"].iloc[2])


def test_rows_beyond_max_buffer_bytes_are_dropped_and_counted(settings: Settings) -> None:
    wide = _request("wide", rows=1)
    columns = dict(wide["columns"])  # type: ignore[call-overload]
    columns["district"] = np.array(["x" * 40_000], dtype=object)
    wide = {**wide, "columns": columns}
    with PredictionLog.open(
        settings, flush_rows=1_000_000, flush_seconds=3600, max_buffer_bytes=100_000
    ) as log:
        log.log(**wide)
        log.log(**{**wide, "request_id": "wide-2"})
        log.log(**{**wide, "request_id": "over"})  # a third would pass 100 kB
        log.log(**_request("narrow", rows=1))
        assert log.dropped_rows == 1
    frame = read_predictions(settings, "house-prices")
    assert sorted(frame["request_id"].unique()) == ["narrow", "wide", "wide-2"]


def test_request_bytes_counts_each_text_whatever_else_a_column_holds() -> None:
    """The size a request is held at (what max_buffer_bytes bounds) counts the characters
    of its texts, beside missing values and objects that are not text."""

    def size(*texts: object) -> int:
        request = _request("r", rows=len(texts))
        columns = {**request["columns"], "district": np.array(texts, dtype=object)}  # type: ignore[dict-item]
        return request_bytes(LoggedRequest(**{**request, "columns": columns}))  # type: ignore[arg-type]

    assert size("a" * 1000, None, "cd") - size("a", None, "cd") == 999
    assert size("a" * 1000, 7, "cd") - size("a", 7, "cd") == 999  # 7: a cell, no text
    assert size("ab", None, "cd") == size("ab", 7.5, "cd") == size("ab", "", "cd")


def test_flushes_when_flush_bytes_are_waiting(settings: Settings) -> None:
    wide = _request("a", rows=1)
    columns = dict(wide["columns"])  # type: ignore[call-overload]
    columns["district"] = np.array(["x" * 30_000], dtype=object)
    with PredictionLog.open(
        settings, flush_rows=1_000_000, flush_seconds=3600, flush_bytes=50_000
    ) as log:
        log.log(**{**wide, "columns": columns})
        time.sleep(0.2)
        assert _segments(settings) == []  # below every trigger, long timer: waits
        log.log(**{**wide, "columns": columns, "request_id": "b"})
        assert _wait_for(lambda: log.stats().written_rows == 2)


def test_open_removes_temporary_files_left_by_a_crash(settings: Settings) -> None:
    folder = settings.home / "predictions" / "model=m" / "version=1" / "date=2025-03-01"
    folder.mkdir(parents=True)
    stale = folder / ".abc.parquet.tmp"
    fresh = folder / ".def.parquet.tmp"  # another process may be writing it right now
    for path in (stale, fresh):
        path.write_bytes(b"PAR1 cut short")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    with PredictionLog.open(settings):
        pass
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("flush_rows", 0),
        ("flush_seconds", -1.0),
        ("max_buffer_rows", True),
        ("flush_bytes", 0),
        ("max_buffer_bytes", -5),
        ("max_text_chars", 0.5 - 1),
    ],
)
def test_settings_out_of_range_are_refused(settings: Settings, option: str, value: object) -> None:
    with pytest.raises(ModelyardError, match=f"PredictionLog {option} must be a positive number"):
        PredictionLog.open(settings, **{option: value})  # type: ignore[arg-type]


def _request(request_id: str, rows: int) -> dict[str, object]:
    return {
        "model": "house-prices",
        "version": 1,
        "request_id": request_id,
        "received_at": T0,
        "columns": house_columns(rows),
        "rows": rows,
        "output": RuntimeOutput(values=np.zeros(rows)),
        "latency_ms": 1.0,
        "endpoint": "predict",
    }


def test_decoded_blocks_are_written_like_separate_arrays(
    settings: Settings, predlog: PredictionLog
) -> None:
    """Requests decoded as blocks (what the server logs) give the very rows that the same
    inputs given as one array per column give, mixed in one flush."""
    layout = ColumnLayout(("area", "district", "built"), ("numeric", "categorical", "datetime"))
    sizes = [1, 3, 1, 2, 1]
    offset = 0
    for index, rows in enumerate(sizes):
        columns = house_columns(rows, offset=offset)
        offset += rows
        for form, given in (("blocks", ColumnBlocks.of(layout, columns, rows)), ("dict", columns)):
            predlog.log(
                model=form,
                version=1,
                request_id=f"r{index}",
                received_at=at(index),
                columns=given,
                rows=rows,
                output=RuntimeOutput(values=np.arange(rows, dtype=np.float64) + index),
                latency_ms=1.0 + index,
                endpoint="predict",
            )
    predlog.flush()
    frames = [
        read_predictions(settings, form).drop(columns=["model"]) for form in ("blocks", "dict")
    ]
    assert len(frames[0]) == sum(sizes)
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_several_requests_logged_in_one_call_read_back_as_if_logged_apart(
    settings: Settings, predlog: PredictionLog
) -> None:
    """``request_ids`` (a stream consumer's batch): each row under its own request's id
    and position, the very rows that one call per request gives; feedback finds them."""
    sizes = [2, 1, 3]
    columns = house_columns(sum(sizes))
    values = np.arange(sum(sizes), dtype=np.float64)
    ids = np.array(["a", "a", "b", "c", "c", "c"], dtype=object)
    positions = np.array([0, 1, 0, 0, 1, 2])
    common = {"received_at": T0, "latency_ms": 2.0, "endpoint": "stream"}
    predlog.log(
        model="together",
        version=1,
        request_id="a",
        columns=columns,
        rows=len(values),
        output=RuntimeOutput(values=values),
        row_numbers=positions,
        request_ids=ids,
        **common,
    )
    assert predlog.unknown_feedback(
        "together",
        [FeedbackItem("c", 1.0, 2), FeedbackItem("c", 1.0, 3), FeedbackItem("b", 1.0, 0)],
    ) == [1]  # held in memory: found pair by pair
    start = 0
    for request_id, rows in zip(("a", "b", "c"), sizes, strict=True):
        piece = slice(start, start + rows)
        start += rows
        predlog.log(
            model="apart",
            version=1,
            request_id=request_id,
            columns={name: array[piece] for name, array in columns.items()},
            rows=rows,
            output=RuntimeOutput(values=values[piece]),
            **common,
        )
    predlog.flush()
    together, apart = (
        read_predictions(settings, model).drop(columns=["model"]) for model in ("together", "apart")
    )
    assert together["request_id"].tolist() == ids.tolist()
    assert together["row"].tolist() == positions.tolist()
    pd.testing.assert_frame_equal(together, apart)
