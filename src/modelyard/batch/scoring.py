"""The seam between batch jobs and the one prediction path online serving uses.

Batch decodes, validates, predicts and logs exactly as online serving does, never with a
copy of its rules:

- the input contract: :class:`modelyard.contract.InputContract` built from the version,
  and its fronts: a CSV chunk's text through the CSV rule (:func:`~modelyard.contract.csv_values`,
  as an online ``text/csv`` request), typed values (Parquet, SQL) through the JSON front
  (:func:`~modelyard.contract.decode_columnar`);
- the runtime: :func:`modelyard.runtime.select_runtime` (ONNX Runtime when the version's
  export holds parity, else the pipeline; artifacts are checksum-verified);
- decode → validate → predict → log: :class:`modelyard.engine.PredictionEngine`, given
  the version as a :class:`~modelyard.engine.ServedVersion` whose batcher calls the
  runtime directly (a batch chunk is already a batch).

The contract rejects a whole request at its first 50 problems; batch must keep the good
rows, so :meth:`ChunkScorer.score` takes the rows named in the problems out and decodes
the rest again (row by row once a chunk has many bad rows). The engine's log call is
held (:class:`_HeldLog`) and written by the worker only after the chunk commits, so a
crash never logs a row twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.batch.inputs import Chunk
from modelyard.contract import (
    InputContract,
    RequestValidationError,
    csv_values,
    decode_columnar,
)
from modelyard.engine import PredictionEngine
from modelyard.errors import DataError
from modelyard.runtime import select_runtime
from modelyard.types import Columns, Runtime, RuntimeOutput

if TYPE_CHECKING:
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["ENDPOINT", "ChunkScore", "ChunkScorer"]

#: The prediction log's endpoint for batch rows.
ENDPOINT = "batch"
_WHOLE_CHUNK_TRIES = 4  # decodes of a whole chunk before checking it row by row


@dataclass(frozen=True)
class ChunkScore:
    """A chunk's outcome: the valid rows' positions in the chunk, their inputs and
    predictions, the rejected rows' positions with their reasons, and the engine's log
    call for the valid rows (held until the chunk commits)."""

    positions: np.ndarray
    columns: Columns | None
    output: RuntimeOutput | None
    rejected: list[tuple[int, str]]
    log: dict[str, Any] | None = None


class _Direct:
    """The engine's batcher for batch: the chunk is the batch, run on this thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        return self.runtime.predict(columns, rows)


@dataclass(frozen=True)
class _Served:
    """The version as the engine sees it (:class:`~modelyard.engine.ServedVersion`)."""

    name: str
    number: int
    input_spec: InputContract
    batcher: _Direct


class _HeldLog:
    """The engine's prediction sink: keeps the last log call for the worker to write."""

    def __init__(self) -> None:
        self.held: dict[str, Any] | None = None

    def log(self, **prediction: Any) -> None:
        self.held = prediction


class ChunkScorer:
    """Checks and scores chunks for one registered version.

    Raises (on construction):
        IntegrityError: an artifact of the version fails its checksum.
        ModelyardError: the version records no input columns.
    """

    def __init__(
        self, registry: Registry, version: ModelVersion, *, chunk_rows: int, runtime: str
    ) -> None:
        self.version = version
        self.contract = InputContract.from_version(version, max_rows=chunk_rows)
        choice = select_runtime(registry, version, runtime)
        self.runtime, self.runtime_reason = choice.runtime, choice.reason
        self._sink = _HeldLog()
        self._engine = PredictionEngine(self._sink)
        self._served = _Served(version.name, version.version, self.contract, _Direct(self.runtime))

    def check_columns(self, given: Sequence[str], where: str) -> None:
        """Fail at once when the input lacks a column the model needs.

        Raises:
            DataError: names every missing column and what the input has instead.
        """
        present = set(given)
        missing = [name for name in self.contract.names if name not in present]
        if missing:
            shown = ", ".join(map(repr, given[:20])) + (", ..." if len(given) > 20 else "")
            raise DataError(
                f"{where}: the input lacks {len(missing)} input column(s) of "
                f"{self.version.ref}: {', '.join(map(repr, missing))}; it has: {shown}. "
                "Add them (same names as in training) and submit again"
            )

    def score(self, chunk: Chunk, *, request_id: str) -> ChunkScore:
        """Check every row of ``chunk`` and predict the valid ones through the engine.

        CSV text goes through the CSV rule; other values are taken as the JSON values
        they stand for (dates as ISO-8601 text).
        """
        values = {}
        for column in self.contract.columns:
            found = chunk.values(column.name)
            values[column.name] = csv_values(column, found) if chunk.text else found
        positions = np.arange(chunk.rows)
        rejected: dict[int, list[str]] = {}
        prediction = None
        started = time.perf_counter()
        for attempt in range(_WHOLE_CHUNK_TRIES + 1):
            if len(positions) == 0:
                break
            if attempt == _WHOLE_CHUNK_TRIES:
                positions = self._check_rows(values, positions, rejected)
                if len(positions) == 0:
                    break
            subset = _take(values, positions)
            try:
                prediction = asyncio.run(
                    self._engine.predict(
                        self._served,
                        partial(_decode, subset),
                        request_id=request_id,
                        received_at=datetime.now(UTC),
                        started=started,
                        endpoint=ENDPOINT,
                    )
                )
                break
            except RequestValidationError as exc:
                bad = set()
                for problem in exc.problems:
                    if problem.row is None:  # a whole-column problem: not a row's fault
                        raise DataError(str(exc)) from exc
                    bad.add(problem.row)
                    reason = _reason(problem.message, problem.row)
                    rejected.setdefault(int(positions[problem.row]), []).append(reason)
                keep = np.ones(len(positions), dtype=bool)
                keep[sorted(bad)] = False
                positions = positions[keep]
        reasons = [(pos, "; ".join(rejected[pos])) for pos in sorted(rejected)]
        if prediction is None:
            return ChunkScore(positions[:0], None, None, reasons)
        held, self._sink.held = self._sink.held, None
        return ChunkScore(positions, prediction.columns, prediction.output, reasons, held)

    def _check_rows(
        self, values: dict[str, list[Any]], positions: np.ndarray, rejected: dict[int, list[str]]
    ) -> np.ndarray:
        """Decode each row alone; record the bad ones, return the good positions."""
        good = []
        for position in positions:
            try:
                decode_columnar(_take(values, np.array([position])), self.contract)
            except RequestValidationError as exc:
                rejected.setdefault(int(position), []).extend(
                    _reason(problem.message, 0) for problem in exc.problems
                )
            else:
                good.append(position)
        return np.array(good, dtype=np.int64)


def _decode(values: dict[str, list[Any]], contract: InputContract) -> tuple[Columns, int]:
    """The engine's decoder of a chunk's values: the contract's JSON front."""
    return decode_columnar(values, contract)


def _reason(message: str, row: int | None) -> str:
    """A problem's message without its row number (relative to what was decoded)."""
    return message.removeprefix(f"row {row}, ").removeprefix(f"row {row}: ")


def _take(values: dict[str, list[Any]], positions: np.ndarray) -> dict[str, list[Any]]:
    if len(positions) and len(positions) == len(next(iter(values.values()), [])):
        return values
    return {name: [column[i] for i in positions] for name, column in values.items()}
