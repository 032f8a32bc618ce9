"""Arrow tables of the prediction log: logged requests and feedback items become columns.

Column layout of a prediction segment, one row per predicted row:

=================  =========================  ==============================================
column             type                       meaning
=================  =========================  ==============================================
request_id         string                     the request the row came in
row                int32                      position of the row in its request (a batch
                                              job logs the input row number)
received_at        timestamp[us, UTC]         when the request arrived
endpoint           string                     the route that served it
latency_ms         float32                    the request's latency
input.<column>     float64/string/timestamp   the decoded inputs (missing values are null)
prediction         float64 or string          regression value, or class label as text
proba.<class>      float64                    class probabilities (classifiers)
=================  =========================  ==============================================

``model`` and ``version`` are partition keys (folder names), added by the readers.
Input texts longer than the log's ``max_text_chars`` are stored cut to that many
characters followed by :data:`TRUNCATED`, so one client sending huge category strings
cannot blow up the log's disk and memory.
Class labels are written as text by :func:`label_text`, the same way feedback labels are,
so ``prediction`` and ``label`` compare as strings: 1, 1.0 and ``np.int64(1)`` all
become ``"1"``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.contract.text import category_text
from modelyard.types import ColumnBlocks

if TYPE_CHECKING:
    from modelyard.types import Columns, RuntimeOutput

__all__ = [
    "BASE_FIELDS",
    "FEEDBACK_FIELDS",
    "INPUT_PREFIX",
    "PROBA_PREFIX",
    "TIMESTAMP",
    "TRUNCATED",
    "LoggedRequest",
    "build_feedback_table",
    "build_prediction_table",
    "input_array",
    "label_float",
    "label_text",
    "micros",
    "problem_of",
    "request_bytes",
]

TIMESTAMP = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
INPUT_PREFIX = "input."
PROBA_PREFIX = "proba."
#: Appended to an input text the log stores cut short.
TRUNCATED = "…[truncated]"
_SAMPLED = 4096  # object cells measured one by one; larger blocks are sampled
_OVERHEAD = 256  # bytes per request besides its arrays (ids, times, Python objects)

#: Columns every prediction frame has, in order (``model``, ``version`` from the path).
BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("request_id", pa.string()),
    pa.field("row", pa.int32()),
    pa.field("received_at", TIMESTAMP),
    pa.field("model", pa.string()),
    pa.field("version", pa.int32()),
    pa.field("endpoint", pa.string()),
    pa.field("latency_ms", pa.float32()),
)
FEEDBACK_FIELDS: tuple[pa.Field, ...] = (
    pa.field("request_id", pa.string()),
    pa.field("row", pa.int32()),
    pa.field("label", pa.string()),
    pa.field("label_float", pa.float64()),
    pa.field("received_at", TIMESTAMP),
)
_FORMAT = {b"modelyard.predlog": b"1"}
_TEXT_BLOCK = 1  # ColumnBlocks.blocks[1]: the categorical (object) columns


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as handed to ``PredictionLog.log``, converted only at flush time."""

    model: str
    version: int
    request_id: str
    received_at: datetime  # UTC
    columns: Mapping[str, np.ndarray]
    rows: int
    output: RuntimeOutput
    latency_ms: float
    endpoint: str
    row_numbers: np.ndarray | None = None  # default: 0, 1, ... (positions in the request)
    # one id per row: the rows of several requests logged in one call (default: request_id)
    request_ids: np.ndarray | None = None


def request_bytes(request: LoggedRequest) -> int:
    """About how many bytes ``request`` holds in memory (its arrays and texts).

    Cheap enough for the request path: NumPy's ``nbytes`` for numbers and dates, the
    lengths of the texts for object columns (sampled evenly past a few thousand cells).
    """
    columns = request.columns
    arrays = list(columns.blocks) if isinstance(columns, ColumnBlocks) else list(columns.values())
    arrays.append(np.asarray(request.output.values))
    if request.request_ids is not None:
        arrays.append(request.request_ids)
    if request.output.proba is not None:
        arrays.append(np.asarray(request.output.proba))
    return _OVERHEAD + sum(_array_bytes(array) for array in arrays)


def _array_bytes(values: Any) -> int:
    array = np.asarray(values)
    if array.dtype != object:
        return int(array.nbytes)
    cells = array.ravel()
    if cells.size == 0:
        return 0
    sample = (cells if cells.size <= _SAMPLED else cells[:: cells.size // _SAMPLED]).tolist()
    try:  # decoded categories are str or None: joined in C, not measured one by one
        text = len("".join(filter(None, sample)))
    except TypeError:  # something else among them (a column given as is)
        text = sum(len(cell) for cell in sample if isinstance(cell, str))
    # 8 bytes per pointer, ~50 per str object header, plus the characters.
    return int(cells.size * 58 + text * cells.size / len(sample))


def label_text(value: object) -> str | None:
    """A class or feedback label as text, by the contract's category-text rule
    (:func:`modelyard.contract.category_text`: 20.0 → "20"); bytes are read as UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return category_text(value)


def label_float(value: object) -> float | None:
    """A label as a number when it is one (booleans count as 1.0 and 0.0), else None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float):
        return float(value)
    return None


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware UTC datetime."""
    return (moment - _EPOCH) // _MICROSECOND


# -- predictions --------------------------------------------------------------------


def problem_of(request: LoggedRequest) -> str | None:
    """Why a logged request cannot be written, or None when it can."""
    rows = request.rows
    if isinstance(request.columns, ColumnBlocks):  # its blocks' shapes were checked
        if request.columns.rows != rows:
            return f"the input columns have {request.columns.rows} rows, expected {rows}"
    else:
        for name, values in request.columns.items():
            if np.ndim(values) != 1 or len(values) != rows:
                return f"input column {name!r} has shape {np.shape(values)}, expected ({rows},)"
    numbers = request.row_numbers
    if numbers is not None and (np.ndim(numbers) != 1 or len(numbers) != rows):
        return f"row numbers have shape {np.shape(numbers)}, expected ({rows},)"
    ids = request.request_ids
    if ids is not None and (np.ndim(ids) != 1 or len(ids) != rows):
        return f"request ids have shape {np.shape(ids)}, expected ({rows},)"
    values = request.output.values
    if np.ndim(values) != 1 or len(values) != rows:
        return f"predictions have shape {np.shape(values)}, expected ({rows},)"
    proba, classes = request.output.proba, request.output.classes
    if proba is not None:
        width = len(classes) if classes is not None else np.shape(proba)[-1]
        if np.shape(proba) != (rows, width):
            return f"probabilities have shape {np.shape(proba)}, expected ({rows}, {width})"
    return None


def _signature(request: LoggedRequest) -> tuple[Any, ...]:
    inputs: Any
    if isinstance(request.columns, ColumnBlocks):
        inputs = request.columns.layout  # one per model version, compared by identity
    else:
        inputs = tuple(
            (name, np.asarray(values).dtype.kind) for name, values in request.columns.items()
        )
    output = request.output
    classes = None if output.classes is None else tuple(label_text(c) for c in output.classes)
    width = None if output.proba is None else np.shape(output.proba)[1]
    return inputs, _is_classifier(output), classes, width


def _is_classifier(output: RuntimeOutput) -> bool:
    return output.classes is not None or np.asarray(output.values).dtype.kind in "OUSb"


def build_prediction_table(
    requests: Sequence[LoggedRequest],
    *,
    max_text_chars: int | None = None,
    pause: float = 0.0,
) -> pa.Table:
    """One table of every row of ``requests`` (checked with :func:`problem_of` first).

    Requests whose inputs or outputs differ in schema (rare: one version has one
    feature order) are built apart and concatenated, missing columns becoming nulls.
    Input texts longer than ``max_text_chars`` are cut and marked with :data:`TRUNCATED`.
    ``pause`` (seconds) is slept after converting each text column: see
    :func:`_block_arrays`.
    """
    groups: dict[tuple[Any, ...], list[LoggedRequest]] = {}
    for request in requests:
        groups.setdefault(_signature(request), []).append(request)
    tables = [_build_uniform(group, max_text_chars, pause) for group in groups.values()]
    if len(tables) == 1:
        return tables[0]
    if all(table.schema.equals(tables[0].schema) for table in tables):
        return pa.concat_tables(tables)  # a third of the permissive join's cost
    return pa.concat_tables(tables, promote_options="permissive")


def _build_uniform(
    requests: Sequence[LoggedRequest], max_text_chars: int | None, pause: float
) -> pa.Table:
    """Requests that share input columns, kinds and classes, concatenated column-wise."""
    counts = np.fromiter((r.rows for r in requests), dtype=np.int64, count=len(requests))
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    first = requests[0]

    def repeated(values: Iterable[Any], dtype: Any) -> np.ndarray:
        return np.repeat(np.array(list(values), dtype=dtype), counts)

    ids = repeated((r.request_id for r in requests), object)
    for request, start in zip(requests, starts, strict=True):
        if request.request_ids is not None:
            ids[start : start + request.rows] = request.request_ids
    arrays: dict[str, pa.Array] = {
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array(_row_numbers(requests, counts, starts, total)),
        "received_at": pa.array(
            repeated((micros(r.received_at) for r in requests), np.int64), TIMESTAMP
        ),
        "endpoint": pa.array(repeated((r.endpoint for r in requests), object), pa.string()),
        "latency_ms": pa.array(repeated((r.latency_ms for r in requests), np.float32)),
    }
    arrays.update(_input_arrays([r.columns for r in requests], max_text_chars, pause))
    values = _concat([np.asarray(r.output.values) for r in requests])
    if _is_classifier(first.output):
        arrays["prediction"] = pa.array([label_text(v) for v in values], pa.string())
    else:
        arrays["prediction"] = pa.array(values.astype(np.float64), from_pandas=True)
    if first.output.proba is not None:
        proba = _concat([np.asarray(r.output.proba, dtype=np.float64) for r in requests])
        classes = first.output.classes
        if classes:
            names = [str(label_text(c)) for c in classes]
        else:
            names = [str(index) for index in range(proba.shape[1])]
        for index, name in enumerate(names):
            arrays[f"{PROBA_PREFIX}{name}"] = pa.array(proba[:, index])
    return pa.table(arrays).replace_schema_metadata(_FORMAT)


def _row_numbers(
    requests: Sequence[LoggedRequest], counts: np.ndarray, starts: np.ndarray, total: int
) -> np.ndarray:
    """Each row's number: its position in its request, or the number the caller gave."""
    positions = np.arange(total) - np.repeat(starts, counts)
    for request, start in zip(requests, starts, strict=True):
        if request.row_numbers is not None:
            positions[start : start + request.rows] = request.row_numbers
    numbers: np.ndarray = positions.astype(np.int32)
    return numbers


def _input_arrays(
    parts: list[Columns], max_text_chars: int | None, pause: float
) -> dict[str, pa.Array]:
    """The ``input.<column>`` arrays of requests that share their columns, in order,
    texts longer than ``max_text_chars`` cut and marked."""
    first = parts[0]
    if isinstance(first, ColumnBlocks):  # grouped by layout: every part is blocks
        blocks = [part for part in parts if isinstance(part, ColumnBlocks)]
        if len(blocks) != len(parts) or any(part.layout is not first.layout for part in blocks):
            raise ValueError("only blocks of one layout can be concatenated")
        return _block_arrays(blocks, max_text_chars, pause)
    found = {
        INPUT_PREFIX + name: input_array(_concat([np.asarray(part[name]) for part in parts]))
        for name in first
    }
    if max_text_chars is None:
        return found
    return {name: _cut(array, max_text_chars) for name, array in found.items()}


def _block_arrays(
    parts: list[ColumnBlocks], max_text_chars: int | None, pause: float
) -> dict[str, pa.Array]:
    """The input arrays of requests decoded as blocks of one layout.

    The requests' blocks of each kind are copied once into one column-major block (their
    transposes joined), and each column, one contiguous row of it, is converted in one
    call. Per column of the whole flush, not per column of each request: a conversion's
    fixed cost (about as much as converting a hundred values) made a flush of 5,000
    one-row requests cost 2.2 s of CPU. And not one call per block: converting every
    text of a flush at once holds the interpreter lock for tens of milliseconds, which
    the request path waits out; a column at a time, it gets the lock back between calls.

    A background flush passes a ``pause`` slept after each text column (the costly
    conversions: each of their strings is read under the lock): the request path then
    takes the lock whenever it needs it instead of sharing it evenly with the flush,
    whose conversion is spread over a longer time at a lower intensity (a stream
    consumer's tail latency is where this shows: see the README's streaming figures).
    """
    layout = parts[0].layout
    found: dict[str, pa.Array] = {}
    for kind, names in enumerate(layout.names):
        if not names:
            continue
        # [columns, rows], C-contiguous: each column is one contiguous row
        joined = np.concatenate([part.blocks[kind].T for part in parts], axis=1)
        for position, name in enumerate(names):
            array = input_array(joined[position])
            found[name] = array if max_text_chars is None else _cut(array, max_text_chars)
            if pause and kind == _TEXT_BLOCK:
                time.sleep(pause)
    return {INPUT_PREFIX + name: found[name] for name in layout.order}


def _cut(array: pa.Array, limit: int) -> pa.Array:
    """Texts of ``array`` longer than ``limit`` characters, cut and marked."""
    if not pa.types.is_string(array.type) or len(array) == 0:
        return array
    lengths = pc.utf8_length(array)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= limit:
        return array
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(array, 0, limit), TRUNCATED, "")
    return pc.if_else(pc.greater(lengths, limit), cut, array)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def input_array(values: np.ndarray) -> pa.Array:
    """One decoded input column as Arrow: float64, string or timestamp; missing → null."""
    kind = values.dtype.kind
    if kind in "fiub":
        return pa.array(values.astype(np.float64, copy=False), from_pandas=True)
    if kind == "M":
        return pa.array(values, from_pandas=True)
    try:
        # Decoded categories are str or None: read as they are, three times faster
        # than with pandas' null checks (NaN), which are the fallback.
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Not all text (e.g. numbers left in an object column): write each as text.
        return pa.array([label_text(v) for v in values], pa.string())


# -- feedback -----------------------------------------------------------------------


def build_feedback_table(
    request_ids: Sequence[str], rows: Sequence[int], labels: Sequence[object], received_at: datetime
) -> pa.Table:
    """The feedback segment of already-checked items, all received at ``received_at``."""
    count = len(request_ids)
    return pa.table(
        {
            "request_id": pa.array(request_ids, pa.string()),
            "row": pa.array(rows, pa.int32()),
            "label": pa.array([label_text(v) for v in labels], pa.string()),
            "label_float": pa.array([label_float(v) for v in labels], pa.float64()),
            "received_at": pa.array(np.full(count, micros(received_at), np.int64), TIMESTAMP),
        }
    ).replace_schema_metadata(_FORMAT)
