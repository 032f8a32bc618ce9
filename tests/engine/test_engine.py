"""The prediction engine: decode, validate, predict and log as one step, for any front."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from modelyard.contract import InputColumn, InputContract, RequestValidationError, decode_records
from modelyard.engine import PredictionEngine
from modelyard.models.runtime import SklearnRuntime
from modelyard.predlog import PredictionLog, read_predictions
from modelyard.serving.batching import BatchStats, MicroBatcher
from modelyard.settings import Settings

CONTRACT = InputContract(
    (
        InputColumn("size", "numeric", nullable=False, min=40.0, max=200.0),
        InputColumn("town", "categorical", nullable=False, categories=frozenset({"a", "b"})),
    ),
    reject_unseen=True,
    ranges="warn",
)


@dataclass
class Version:
    """A served version as the engine sees it (what serving's LoadedModel holds)."""

    name: str
    number: int
    input_spec: InputContract
    batcher: MicroBatcher


@pytest.fixture
def pipeline() -> Pipeline:
    frame = pd.DataFrame({"size": [50.0, 120.0, 180.0, 90.0], "town": ["a", "b", "a", "b"]})
    target = 1000 * frame["size"] + frame["town"].map({"a": 5e4, "b": 0})
    features = ColumnTransformer(
        [("town", OneHotEncoder(handle_unknown="ignore"), ["town"])], remainder="passthrough"
    )
    return Pipeline([("features", features), ("model", LinearRegression())]).fit(frame, target)


@pytest.fixture
def predlog(tmp_path: Path) -> Iterator[PredictionLog]:
    log = PredictionLog.open(Settings(home=tmp_path / "home"), flush_seconds=3600)
    try:
        yield log
    finally:
        log.close()


def _run(pipeline: Pipeline, engine: PredictionEngine, body: Any, offload: bool = False) -> Any:
    async def main() -> Any:
        batcher = MicroBatcher(SklearnRuntime(pipeline, ["size", "town"]))
        try:
            version = Version("houses", 3, CONTRACT, batcher)
            if isinstance(body, pd.DataFrame):
                return await engine.predict_frame(
                    version, body, request_id="f1", received_at=datetime.now(UTC), endpoint="batch"
                )
            return await engine.predict(
                version,
                lambda contract: decode_records(body, contract),
                request_id="r1",
                received_at=datetime.now(UTC),
                started=time.perf_counter(),
                endpoint="v1_predict",
                offload=offload,
            )
        finally:
            await batcher.aclose()

    return asyncio.run(main())


def test_a_request_is_decoded_predicted_and_logged(
    pipeline: Pipeline, predlog: PredictionLog, tmp_path: Path
) -> None:
    engine = PredictionEngine(predlog)
    rows = [{"size": 100.0, "town": "a"}, {"size": 60, "town": "b"}]
    answer = _run(pipeline, engine, rows)
    assert (answer.request_id, answer.rows, answer.out_of_range) == ("r1", 2, 0)
    np.testing.assert_allclose(answer.output.values, pipeline.predict(pd.DataFrame(rows)))
    predlog.flush()
    logged = read_predictions(Settings(home=tmp_path / "home"), "houses")
    assert logged["request_id"].tolist() == ["r1", "r1"]
    assert logged["input.town"].tolist() == ["a", "b"]
    np.testing.assert_allclose(logged["prediction"], answer.output.values)


def test_a_frame_goes_through_the_same_contract(pipeline: Pipeline) -> None:
    frame = pd.DataFrame({"size": [100.0, 60.0], "town": pd.Categorical(["a", "b"])})
    by_frame = _run(pipeline, PredictionEngine(), frame)
    by_json = _run(pipeline, PredictionEngine(), frame.astype({"town": object}).to_dict("records"))
    np.testing.assert_array_equal(by_frame.output.values, by_json.output.values)
    with pytest.raises(RequestValidationError, match="'z' was never seen in training"):
        _run(pipeline, PredictionEngine(), frame.assign(town=["a", "z"]))


def test_refused_input_is_neither_predicted_nor_logged(
    pipeline: Pipeline, predlog: PredictionLog, tmp_path: Path
) -> None:
    with pytest.raises(RequestValidationError):
        _run(pipeline, PredictionEngine(predlog), [{"size": "big", "town": "a"}])
    predlog.flush()
    assert not list((tmp_path / "home").glob("predictions/**/*.parquet"))


def test_out_of_range_numbers_are_accepted_counted_and_logged_once(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    counted: list[tuple[str, int]] = []
    engine = PredictionEngine(on_out_of_range=lambda model, count: counted.append((model, count)))
    rows = [{"size": 500.0, "town": "a"}, {"size": 1.0, "town": "b"}, {"size": 90, "town": "a"}]
    with caplog.at_level(logging.WARNING, logger="modelyard.engine"):
        first = _run(pipeline, engine, rows)
        _run(pipeline, engine, rows)
    assert first.out_of_range == 2 and first.rows == 3
    assert counted == [("houses", 2), ("houses", 2)]
    assert len([r for r in caplog.records if "outside their training range" in r.message]) == 1


def test_a_failing_log_never_fails_the_prediction(pipeline: Pipeline, tmp_path: Path) -> None:
    log = PredictionLog.open(Settings(home=tmp_path / "home"))
    log.close()  # a closed log drops and counts the rows; the answer still comes back
    answer = _run(pipeline, PredictionEngine(log), [{"size": 100.0, "town": "a"}])
    assert answer.rows == 1 and log.dropped_rows == 1


def test_a_large_body_decodes_off_the_event_loop_to_the_same_answer(pipeline: Pipeline) -> None:
    rows = [{"size": 40.0 + i % 160, "town": "ab"[i % 2]} for i in range(500)]
    on_loop = _run(pipeline, PredictionEngine(), rows)
    off_loop = _run(pipeline, PredictionEngine(), rows, offload=True)
    np.testing.assert_array_equal(on_loop.output.values, off_loop.output.values)
    with pytest.raises(RequestValidationError, match="row 3, column 'town'"):
        _run(pipeline, PredictionEngine(), [*rows[:3], {"size": 50.0, "town": "z"}], offload=True)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # NumPy's, inside
def test_a_prediction_that_overflows_is_refused_naming_its_row(
    pipeline: Pipeline, predlog: PredictionLog, tmp_path: Path
) -> None:
    # 1000 * 1.7e308 overflows inside the linear model: the runtime answers infinity
    rows = [{"size": 100.0, "town": "a"}, {"size": 1.7e308, "town": "b"}]
    with pytest.raises(RequestValidationError) as caught:
        _run(pipeline, PredictionEngine(predlog), rows)
    (problem,) = caught.value.problems
    assert (problem.row, problem.kind) == (1, "non_finite_output")
    assert "GET /v1/models/houses" in problem.message
    predlog.flush()
    assert not list((tmp_path / "home").glob("predictions/**/*.parquet"))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # NumPy's, inside
def test_requests_decoded_together_get_what_each_gets_alone(
    pipeline: Pipeline, predlog: PredictionLog, tmp_path: Path
) -> None:
    parts = [
        [{"size": 100.0, "town": "a"}],
        [{"size": 60.0, "town": "b"}, {"size": 1.7e308, "town": "b"}],  # overflows
        [{"size": 500.0, "town": "a"}, {"size": 90.0, "town": "b"}],  # one out of range
    ]
    counted: list[tuple[str, int]] = []
    engine = PredictionEngine(predlog, on_out_of_range=lambda m, n: counted.append((m, n)))

    async def main() -> tuple[list[Any], BatchStats]:
        batcher = MicroBatcher(SklearnRuntime(pipeline, ["size", "town"]))
        try:
            version = Version("houses", 3, CONTRACT, batcher)
            columns, _ = decode_records([row for part in parts for row in part], CONTRACT)
            answers = await engine.predict_decoded(
                version,
                columns,
                [(f"p{i}", len(part)) for i, part in enumerate(parts)],
                received_at=datetime.now(UTC),
                started=time.perf_counter(),
                endpoint="stream",
            )
            return answers, batcher.stats
        finally:
            await batcher.aclose()

    (first, refused, third), stats = asyncio.run(main())
    assert (stats.batches, stats.rows) == (1, 5)  # one model call
    alone_first = _run(pipeline, PredictionEngine(), parts[0])
    np.testing.assert_array_equal(first.output.values, alone_first.output.values)
    alone_third = _run(pipeline, PredictionEngine(), parts[2])
    np.testing.assert_array_equal(third.output.values, alone_third.output.values)
    assert (first.request_id, first.rows, third.request_id, third.rows) == ("p0", 1, "p2", 2)
    with pytest.raises(RequestValidationError) as alone:
        _run(pipeline, PredictionEngine(), parts[1])
    assert isinstance(refused, RequestValidationError)
    assert str(refused) == str(alone.value) and refused.problems == alone.value.problems
    # counted per request, as each alone: the overflowing one's size is out of range too
    assert counted == [("houses", 1), ("houses", 1)] and third.out_of_range == 1
    predlog.flush()
    logged = read_predictions(Settings(home=tmp_path / "home"), "houses")
    assert sorted(zip(logged["request_id"], logged["row"], strict=True)) == [
        ("p0", 0),
        ("p2", 0),
        ("p2", 1),
    ]
