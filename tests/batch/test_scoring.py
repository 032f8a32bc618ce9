"""A CSV chunk scored through the columnar CSV front answers as the row path does: the
same predictions, the same rejected rows with the same reasons, the same logged inputs.

The row path here is the one every typed input (Parquet, SQL) and every online
``text/csv`` request takes: the CSV rule field by field, then the JSON front.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.batch import submit
from modelyard.batch.backends import LocalBackend
from modelyard.batch.inputs import Chunk, InputFile, source_of
from modelyard.batch.jobs import Job
from modelyard.batch.scoring import CheckedChunk, ChunkScore, ChunkScorer
from modelyard.contract import csv_values
from modelyard.errors import DataError
from modelyard.registry import Registry
from modelyard.types import ColumnBlocks

from .conftest import BatchYard, house_rows

_ODD = [
    "",
    "abc",
    "1e20",
    "1e400",
    "-0",
    "+5",
    ".5",
    "NaN",
    "true",
    "FALSE",
    "a, with a comma",
    'say "hi"',
    "omega",
    "2024-13-01",
    "20.0",
    "x" * 300,
]


def _corrupted(frame: pd.DataFrame, seed: int, cells: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = frame.astype(str).replace("nan", "")
    for _ in range(cells):
        row, column = int(rng.integers(0, len(frame))), int(rng.integers(0, frame.shape[1]))
        frame.iat[row, column] = _ODD[int(rng.integers(0, len(_ODD)))]
    return frame


def _row_path(chunk: Chunk, scorer: ChunkScorer) -> Chunk:
    """The chunk as typed values: each field read by the CSV rule, for the JSON front."""
    typed = {
        column.name: pd.Series(csv_values(column, chunk.values(column.name)), dtype=object)
        for column in scorer.contract.columns
    }
    return Chunk(chunk.first_row, pd.DataFrame(typed), False, chunk.progress)


def _same(left: ChunkScore, right: ChunkScore) -> None:
    assert left.positions.tolist() == right.positions.tolist()
    assert left.rejected == right.rejected
    if left.output is None or right.output is None:
        assert left.output is right.output is None
        return
    np.testing.assert_array_equal(left.output.values, right.output.values)
    if left.output.proba is not None:
        np.testing.assert_array_equal(left.output.proba, right.output.proba)
    ours, theirs = left.columns, right.columns
    assert isinstance(ours, ColumnBlocks) and isinstance(theirs, ColumnBlocks)
    for mine, other in zip(ours.blocks, theirs.blocks, strict=True):
        assert mine.dtype == other.dtype and mine.shape == other.shape
        if mine.dtype.kind == "f":  # NaN alike, signed zeros alike
            assert np.array_equal(np.isnan(mine), np.isnan(other))
            assert np.array_equal(np.signbit(mine), np.signbit(other))
        if mine.dtype.kind == "M":  # NaT is not equal to itself: compare the ticks
            mine, other = mine.view(np.int64), other.view(np.int64)
        assert np.array_equal(mine, other, equal_nan=mine.dtype.kind == "f")
    assert left.log is not None and right.log is not None
    assert left.log["rows"] == right.log["rows"]


def _frame(yard: BatchYard, model: str, rows: int) -> pd.DataFrame:
    if model == "houses":
        return house_rows(yard, rows)
    picked = yard.churn.drop(columns=["label"]).sample(rows, replace=True, random_state=rows)
    return picked.reset_index(drop=True)


@pytest.mark.parametrize("runtime", ["auto", "sklearn"])
@pytest.mark.parametrize(("model", "rows", "cells"), [("houses", 400, 60), ("churn", 300, 40)])
def test_a_csv_chunk_scores_as_the_row_path_does(
    batch_yard: BatchYard, tmp_path: Path, runtime: str, model: str, rows: int, cells: int
) -> None:
    frame = _corrupted(_frame(batch_yard, model, rows), seed=rows, cells=cells)
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    with Registry.open(batch_yard.settings) as registry:
        version = registry.get_version(f"{model}@production")
        scorer = ChunkScorer(registry, version, chunk_rows=1_000, runtime=runtime)
    (chunk,) = InputFile(source_of(path), 1_000).chunks()
    columnar = scorer.score(chunk, request_id="job")
    row_path = scorer.score(_row_path(chunk, scorer), request_id="job")
    _same(columnar, row_path)
    assert 0 < len(columnar.rejected) < rows  # the odd fields did reject some rows
    reasons = dict(columnar.rejected)
    assert all(reason and not reason.startswith("row ") for reason in reasons.values())


def test_every_reason_of_a_row_is_kept_past_50_problems(
    batch_yard: BatchYard, tmp_path: Path
) -> None:
    """A chunk with more than 50 problems: each bad row keeps each of its reasons."""
    frame = house_rows(batch_yard, 200).astype(str)
    frame.loc[:, "size"] = "big"  # 200 problems in the first column...
    frame.loc[150, "town"] = "omega"  # ...and one more in a later one
    frame.loc[150, "rooms"] = "many"
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    with Registry.open(batch_yard.settings) as registry:
        scorer = ChunkScorer(
            registry, registry.get_version("houses@production"), chunk_rows=500, runtime="auto"
        )
    (chunk,) = InputFile(source_of(path), 500).chunks()
    scored = scorer.score(chunk, request_id="job")
    assert len(scored.positions) == 0 and len(scored.rejected) == 200
    reason = dict(scored.rejected)[150]
    assert "'size'" in reason and "'rooms'" in reason, reason
    _same(scored, scorer.score(_row_path(chunk, scorer), request_id="job"))


def _job_in_chunks(
    batch_yard: BatchYard, frame: pd.DataFrame, tmp_path: Path
) -> tuple[Job, ChunkScorer, list[Chunk]]:
    """``frame`` as a submitted job's CSV, the production version's scorer and the
    file's 100-row chunks."""
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    job = submit(path, model="houses@production", settings=batch_yard.settings)
    with Registry.open(batch_yard.settings) as registry:
        version = registry.get_version("houses@production")
        scorer = ChunkScorer(registry, version, chunk_rows=100, runtime="auto")
    return job, scorer, list(InputFile(source_of(path), 100).chunks())


def test_the_local_backend_reads_ahead_without_changing_scores_or_when_errors_show(
    batch_yard: BatchYard, tmp_path: Path
) -> None:
    """The next chunk is read and checked while one is scored: the same scores, in
    order; a chunk-wide problem is raised when its chunk is reached, not before."""
    frame = _corrupted(house_rows(batch_yard, 300), seed=3, cells=30)
    job, scorer, chunks = _job_in_chunks(batch_yard, frame, tmp_path)
    settings = batch_yard.settings
    assert [chunk.first_row for chunk in chunks] == [0, 100, 200]

    ahead = list(LocalBackend().score(iter(chunks), scorer, job, settings))
    in_turn = list(LocalBackend(read_ahead=False).score(iter(chunks), scorer, job, settings))
    assert [chunk.first_row for chunk, _ in ahead] == [0, 100, 200]
    for (_, mine), (_, other) in zip(ahead, in_turn, strict=True):
        _same(mine, other)
        assert mine.log is not None and other.log is not None
        assert mine.log["output"].values.tolist() == other.log["output"].values.tolist()

    assert isinstance(chunks[1].table, pa.Table)
    broken = Chunk(100, chunks[1].table.drop_columns(["size"]), True, chunks[1].progress)
    scoring = LocalBackend().score(iter([chunks[0], broken, chunks[2]]), scorer, job, settings)
    first, _ = next(scoring)
    assert first.first_row == 0
    with pytest.raises(DataError, match="size"):
        next(scoring)

    scoring = LocalBackend().score(iter(chunks), scorer, job, settings)
    next(scoring)
    scoring.close()  # waits for the read in flight; the reader is then stopped


def test_the_next_chunk_is_predicted_while_one_is_committed(
    batch_yard: BatchYard, tmp_path: Path
) -> None:
    """The local backend predicts chunk n + 1 on its own thread before the worker has
    taken chunk n's score further; a failed model call is raised at its own chunk."""
    job, scorer, chunks = _job_in_chunks(batch_yard, house_rows(batch_yard, 300), tmp_path)
    settings = batch_yard.settings
    predicted: dict[int, threading.Event] = {c.first_row: threading.Event() for c in chunks}
    threads: set[str] = set()
    plain = scorer.predict

    def watched(checked: CheckedChunk, *, request_id: str) -> ChunkScore:
        threads.add(threading.current_thread().name)
        if checked.chunk.first_row == 200 and failing:
            raise RuntimeError("the runtime failed on this chunk")
        scored = plain(checked, request_id=request_id)
        predicted[checked.chunk.first_row].set()
        return scored

    scorer.predict = watched  # type: ignore[method-assign]
    failing = False
    scoring = LocalBackend().score(iter(chunks), scorer, job, settings)
    first, _ = next(scoring)
    assert first.first_row == 0
    # chunk 100 is being (or was) predicted while the caller still holds chunk 0
    assert predicted[100].wait(timeout=60)
    assert [chunk.first_row for chunk, _ in scoring] == [100, 200]
    assert threads and all(name.startswith("modelyard-predict-") for name in threads)

    failing = True
    scoring = LocalBackend().score(iter(chunks), scorer, job, settings)
    assert [next(scoring)[0].first_row, next(scoring)[0].first_row] == [0, 100]
    with pytest.raises(RuntimeError, match="this chunk"):
        next(scoring)
