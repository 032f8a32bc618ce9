"""The seam between batch jobs and the one prediction path online serving uses.

Batch decodes, validates, predicts and logs exactly as online serving does, never with a
copy of its rules:

- the input contract: :class:`modelyard.contract.InputContract` built from the version,
  and its fronts: a CSV chunk's Arrow text columns through the columnar CSV front
  (:func:`~modelyard.contract.check_csv_table`: the rules of an online ``text/csv``
  request, checked a column at a time), typed values (Parquet, SQL) through the JSON
  front (:func:`~modelyard.contract.check_columnar`);
- the runtime: :func:`modelyard.runtime.select_runtime` (ONNX Runtime when the version's
  export holds parity, else the pipeline; artifacts are checksum-verified);
- decode → validate → predict → log: :class:`modelyard.engine.PredictionEngine`, given
  the version as a :class:`~modelyard.engine.ServedVersion` whose batcher calls the
  runtime directly (a batch chunk is already a batch).

Online, the contract rejects a whole request; batch keeps the good rows, so
:meth:`ChunkScorer.score` has the contract list every problem of the chunk, takes the
rows named out and hands the rest, already decoded, to the engine. The engine's log call is
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
import pyarrow as pa

from modelyard.batch.inputs import Chunk
from modelyard.contract import (
    InputContract,
    Problems,
    RequestValidationError,
    check_columnar,
    check_csv_table,
)
from modelyard.engine import PredictionEngine
from modelyard.errors import DataError
from modelyard.runtime import select_runtime
from modelyard.types import ColumnBlocks, Columns, Runtime, RuntimeOutput

if TYPE_CHECKING:
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["ENDPOINT", "CheckedChunk", "ChunkScore", "ChunkScorer"]

#: The prediction log's endpoint for batch rows.
ENDPOINT = "batch"


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


@dataclass(frozen=True)
class CheckedChunk:
    """A chunk checked by the contract: its decoded columns (every row) and the reasons
    of the rows it rejects, by position in the chunk."""

    chunk: Chunk
    blocks: ColumnBlocks
    rejected: dict[int, list[str]]


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
        """Check every row of ``chunk`` and predict the valid ones through the engine
        (:meth:`checked`, then :meth:`predict`)."""
        return self.predict(self.checked(chunk), request_id=request_id)

    def checked(self, chunk: Chunk) -> CheckedChunk:
        """Every row of ``chunk`` checked by the contract, with the reasons of the rows
        it rejects.

        CSV text goes through the contract's columnar CSV front (Arrow columns); other
        values are taken as the JSON values they stand for (dates as ISO-8601 text).
        Every problem of every row is its reason (one per problem, in the contract's
        order). Safe to call on one thread while another runs :meth:`predict` (the
        contract is read-only), which is how :class:`~modelyard.batch.backends.LocalBackend`
        reads ahead.

        Raises:
            DataError: a problem of the whole chunk (a missing column, say).
        """
        blocks, problems = self.check(chunk)
        rejected = {
            position: [_reason(problem.message, position) for problem in found]
            for position, found in problems.by_row().items()
        }
        return CheckedChunk(chunk, blocks, rejected)

    def predict(self, checked: CheckedChunk, *, request_id: str) -> ChunkScore:
        """Predict the rows of ``checked`` the contract kept, through the engine; the
        rows whose prediction is not finite are rejected too."""
        chunk, blocks, rejected = checked.chunk, checked.blocks, dict(checked.rejected)
        keep = np.ones(chunk.rows, dtype=bool)
        keep[list(rejected)] = False
        positions = np.flatnonzero(keep)
        prediction = None
        started = time.perf_counter()
        while len(positions):
            subset = _take(blocks, positions)
            try:
                prediction = asyncio.run(
                    self._engine.predict(
                        self._served,
                        partial(_decoded, subset),
                        request_id=request_id,
                        received_at=datetime.now(UTC),
                        started=started,
                        endpoint=ENDPOINT,
                    )
                )
                break
            except RequestValidationError as exc:  # outputs that are not finite
                bad = []
                for problem in exc.problems:
                    if problem.row is None:  # not a row's fault (the engine names rows)
                        raise DataError(str(exc)) from exc
                    bad.append(problem.row)
                    reason = _reason(problem.message, problem.row)
                    rejected.setdefault(int(positions[problem.row]), []).append(reason)
                positions = np.delete(positions, bad)
        reasons = [(pos, "; ".join(rejected[pos])) for pos in sorted(rejected)]
        if prediction is None:
            return ChunkScore(positions[:0], None, None, reasons)
        held, self._sink.held = self._sink.held, None
        return ChunkScore(positions, prediction.columns, prediction.output, reasons, held)

    def check(self, chunk: Chunk) -> tuple[ColumnBlocks, Problems]:
        """Every row of ``chunk`` checked by the contract: the decoded columns and
        every problem (all listed).

        Raises:
            DataError: a problem of the whole chunk (a missing column, say).
        """
        problems = Problems(limit=None)
        try:
            if chunk.text and isinstance(chunk.table, pa.Table):
                blocks = check_csv_table(chunk.table, self.contract, problems)
            else:
                names = self.contract.names
                values = {name: chunk.values(name) for name in names}
                blocks = check_columnar(values, self.contract, problems)
        except RequestValidationError as exc:
            raise DataError(str(exc)) from exc
        whole = [problem for problem in problems.listed if problem.row is None]
        if blocks is None or whole:
            raise DataError(str(RequestValidationError(whole)))
        return blocks, problems


def _decoded(blocks: ColumnBlocks, contract: InputContract) -> tuple[Columns, int]:
    """The engine's decoder of a chunk: its rows, already checked by the contract."""
    return blocks, blocks.rows


def _reason(message: str, row: int | None) -> str:
    """A problem's message without its row number (relative to what was decoded)."""
    return message.removeprefix(f"row {row}, ").removeprefix(f"row {row}: ")


def _take(blocks: ColumnBlocks, positions: np.ndarray) -> ColumnBlocks:
    """The rows at ``positions`` of ``blocks`` (``blocks`` itself when that is all)."""
    if len(positions) == blocks.rows:
        return blocks
    taken = tuple(block[positions] for block in blocks.blocks)
    return ColumnBlocks(blocks.layout, taken, len(positions))  # type: ignore[arg-type]
