"""The seam between batch jobs and the prediction path online serving uses.

Batch must decode, validate and predict exactly as online serving does, never with a
copy of its rules. Everything batch needs of that path goes through this module:

- the input contract: :class:`modelyard.serving.decode.InputSpec` built from the
  version (as the server's model manager builds it), and its decoders: a CSV chunk's
  text through the ``text/csv`` rules (:func:`_csv_values`, the rule of
  :func:`~modelyard.serving.decode.decode_csv`), typed values (Parquet) through the JSON
  rules (:func:`~modelyard.serving.decode.decode_columnar`);
- the runtime: :func:`modelyard.serving.manager.select_runtime` (ONNX Runtime when the
  version's export holds parity, else the pipeline; artifacts are checksum-verified).

When the one prediction engine (contract + engine modules) replaces these pieces,
only :class:`ChunkScorer` changes. The decoders reject a whole request at its first 50
problems; batch must keep the good rows, so :meth:`ChunkScorer.score` takes the rows
named in the problems out and decodes the rest again (row by row once a chunk has
many bad rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.batch.inputs import Chunk
from modelyard.errors import DataError
from modelyard.serving.decode import (
    InputSpec,
    RequestValidationError,
    _csv_values,  # the text/csv rule; public once the contract module owns it
    decode_columnar,
)
from modelyard.serving.manager import select_runtime
from modelyard.types import Columns, RuntimeOutput

if TYPE_CHECKING:
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["ChunkScore", "ChunkScorer"]

_WHOLE_CHUNK_TRIES = 4  # decodes of a whole chunk before checking it row by row


@dataclass(frozen=True)
class ChunkScore:
    """A chunk's outcome: the valid rows' input numbers, inputs and predictions, and the
    rejected rows' positions in the chunk with their reasons."""

    positions: np.ndarray
    columns: Columns | None
    output: RuntimeOutput | None
    rejected: list[tuple[int, str]]


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
        self.spec = InputSpec.from_version(version, max_rows=chunk_rows)
        self.runtime, self.runtime_reason = select_runtime(registry, version, runtime)

    @property
    def input_names(self) -> list[str]:
        """The version's input columns, in feature order."""
        return self.spec.names

    def check_columns(self, given: Sequence[str], where: str) -> None:
        """Fail at once when the input lacks a column the model needs.

        Raises:
            DataError: names every missing column and what the input has instead.
        """
        present = set(given)
        missing = [name for name in self.spec.names if name not in present]
        if missing:
            shown = ", ".join(map(repr, given[:20])) + (", ..." if len(given) > 20 else "")
            raise DataError(
                f"{where}: the input lacks {len(missing)} input column(s) of "
                f"{self.version.ref}: {', '.join(map(repr, missing))}; it has: {shown}. "
                "Add them (same names as in training) and submit again"
            )

    def score(self, chunk: Chunk) -> ChunkScore:
        """Check every row of ``chunk`` and predict the valid ones.

        CSV text goes through the ``text/csv`` rule; other values are taken as the JSON
        values they stand for (dates as ISO-8601 text).
        """
        values = {}
        for column in self.spec.columns:
            found = chunk.values(column.name)
            values[column.name] = _csv_values(column, found) if chunk.text else found
        positions = np.arange(chunk.rows)
        rejected: dict[int, list[str]] = {}
        decoded = None
        for attempt in range(_WHOLE_CHUNK_TRIES + 1):
            if len(positions) == 0:
                break
            if attempt == _WHOLE_CHUNK_TRIES:
                positions = self._check_rows(values, positions, rejected)
                if len(positions) == 0:
                    break
            try:
                decoded = decode_columnar(_take(values, positions), self.spec)
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
        if decoded is None:
            return ChunkScore(positions[:0], None, None, reasons)
        columns, rows = decoded
        return ChunkScore(positions, columns, self.runtime.predict(columns, rows), reasons)

    def _check_rows(
        self, values: dict[str, list[Any]], positions: np.ndarray, rejected: dict[int, list[str]]
    ) -> np.ndarray:
        """Decode each row alone; record the bad ones, return the good positions."""
        good = []
        for position in positions:
            try:
                decode_columnar(_take(values, np.array([position])), self.spec)
            except RequestValidationError as exc:
                rejected.setdefault(int(position), []).extend(
                    _reason(problem.message, 0) for problem in exc.problems
                )
            else:
                good.append(position)
        return np.array(good, dtype=np.int64)


def _reason(message: str, row: int | None) -> str:
    """A problem's message without its row number (relative to what was decoded)."""
    return message.removeprefix(f"row {row}, ").removeprefix(f"row {row}: ")


def _take(values: dict[str, list[Any]], positions: np.ndarray) -> dict[str, list[Any]]:
    if len(positions) and len(positions) == len(next(iter(values.values()), [])):
        return values
    return {name: [column[i] for i in positions] for name, column in values.items()}
