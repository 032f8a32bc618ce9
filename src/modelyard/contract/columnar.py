"""The contract's columnar CSV front: CSV text held as Arrow columns, checked a column
at a time.

Batch CSV files are read by pyarrow's streaming reader, every input column as text (an
empty field as ``""``). This front gives the same decoded blocks and the same problems,
in the same order, as the row path (:func:`~modelyard.contract.csv.csv_values`, then the
JSON front's per-column core :func:`~modelyard.contract.values.decode_column`), without
Python work per value. It adds no rule of its own:

- number columns: JSON's number grammar (:data:`~modelyard.contract.csv.JSON_NUMBER`)
  is matched and the text cast to float64 by Arrow's compute kernels. A field that is
  not a plain finite number (text, an overflow, an empty field where training had no
  missing values, ``-0`` which JSON reads as the integer 0) goes through the row path's
  own rule, one by one, which decides its value and reports its problem;
- category and date columns: each distinct text (Arrow's dictionary encoding) is read by
  the CSV rule and checked by the row path's rule once
  (:func:`~modelyard.contract.values.decode_value`); its result and problems are spread
  to its rows;
- then ranges and derived ratios, as every front: :func:`~modelyard.contract.values.check_ranges`.

The rows are numbered from 0 in the table, as a request's are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.contract.csv import JSON_NUMBER, csv_number, csv_value
from modelyard.contract.model import InputColumn, InputContract
from modelyard.contract.problems import Problems
from modelyard.contract.values import decode_inputs, decode_value
from modelyard.types import ColumnBlocks

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["check_csv_table"]

#: The grammar of :data:`JSON_NUMBER` as a whole-field RE2 pattern (Arrow's regex engine).
_WHOLE_NUMBER = f"^{JSON_NUMBER.pattern}$"


class _Recorder(Problems):
    """Keeps the problems one value's rule reports (all but the row), to be added for
    each row holding that value."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def add(self, row: int | None, *problem: Any, **named: Any) -> None:
        self.found.append((problem, named))


def check_csv_table(
    table: pa.Table, contract: InputContract, problems: Problems
) -> ColumnBlocks | None:
    """Check the inputs of ``contract`` in ``table`` (CSV text columns); never raises
    for a row's problem.

    Returns:
        The decoded columns, every row's problems added to ``problems``; None when an
        input is missing from ``table`` (a ``missing_column`` problem).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def decode(column: InputColumn) -> np.ndarray:
        texts = table.column(column.name)
        if texts.type != pa.string():
            texts = texts.cast(pa.string())
        texts = pc.fill_null(texts.combine_chunks(), "")
        if column.kind == "numeric":
            return _numbers(column, texts, problems)
        return _by_distinct(column, texts, problems, contract.reject_unseen)

    present = set(table.column_names)
    return decode_inputs(contract, present, decode, problems, table.num_rows)


def _numbers(column: InputColumn, texts: pa.Array, problems: Problems) -> np.ndarray:
    """A number column as float64 (NaN missing); odd fields by the row path's rule."""
    import pyarrow as pa
    import pyarrow.compute as pc

    plain = pc.match_substring_regex(texts, _WHOLE_NUMBER)
    numbers = pc.cast(pc.if_else(plain, texts, pa.scalar(None, pa.string())), pa.float64())
    values: np.ndarray = numbers.to_numpy(zero_copy_only=False).copy()  # NaN where null
    settled = np.isfinite(values) & ~((values == 0) & np.signbit(values))
    if column.nullable:
        settled |= pc.equal(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)
    odd = np.flatnonzero(~settled)
    if odd.size:
        fields = texts.take(pa.array(odd)).to_pylist()
        for row, text in zip(odd.tolist(), fields, strict=True):
            values[row] = decode_value(column, row, csv_number(text), problems, False)
    return values


def _by_distinct(
    column: InputColumn, texts: pa.Array, problems: Problems, reject: bool
) -> np.ndarray:
    """A category or date column: each distinct field decoded once by the row rule."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(texts)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    recorder = _Recorder()
    decoded, found = [], []
    for text in encoded.dictionary.to_pylist():
        recorder.found = []
        decoded.append(decode_value(column, 0, csv_value(column, text), recorder, reject))
        found.append(recorder.found)
    values: np.ndarray
    if column.kind == "datetime":
        ticks = np.array(decoded, dtype=np.int64)[indices]
        values = ticks.view("datetime64[us]").astype("datetime64[ns]")
    else:
        distinct = np.empty(len(decoded), dtype=object)
        distinct[:] = decoded
        values = distinct[indices]
    faulty = np.array([bool(reported) for reported in found], dtype=bool)
    if faulty.any():
        for row in np.flatnonzero(faulty[indices]).tolist():
            for problem, named in found[indices[row]]:
                problems.add(row, *problem, **named)
    return values
