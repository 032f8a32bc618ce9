"""Request decoding: parsed JSON (or CSV text) straight into validated :data:`Columns`.

Each decoder takes one request shape (records, split, Open Inference Protocol V2
tensors, the MLflow scoring formats, CSV) and returns the model's inputs as
:class:`~modelyard.types.ColumnBlocks` (one row-major block per kind, which
reads as one NumPy array per input, in feature order), plus the row count. No pandas on
this path: a small request is checked value by value, a large one column by column with
NumPy.

Rules; each break is an :class:`InputProblem`, all are counted, the first 50 listed:

- every input column must be given (``missing_column``); other columns are ignored;
- null is accepted where the training data had missing values, else ``null_value``;
- numeric columns take JSON numbers. A fraction in an integer column is accepted (the
  pipeline computes in floats). Text such as ``"12.5"``, booleans (unless the column
  was recorded as true/false) and infinities are ``wrong_type``: text is never parsed;
- categorical columns take text, or numbers in their text form (``20`` and ``20.0`` give
  ``"20"``, the rule of :func:`modelyard.features.transformers.category_values`);
  booleans give ``"True"``/``"False"`` only where training had those categories. With
  ``encode.unknown: error`` a category unseen in training is ``unseen_category``;
- datetime columns take ISO-8601 text; offsets become naive UTC, as in training;
- more rows than ``max_rows`` is ``too_many_rows``, none is ``empty``; a request of the
  wrong shape is ``malformed``.

CSV is text: numbers are parsed there, and an empty field is null.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import numpy as np

from modelyard.errors import DataValidationError, ModelyardError
from modelyard.types import KINDS, ColumnBlocks, ColumnLayout, Columns

if TYPE_CHECKING:
    from modelyard.registry.records import ModelVersion

__all__ = [
    "InputColumn",
    "InputProblem",
    "InputSpec",
    "RequestValidationError",
    "decode_columnar",
    "decode_csv",
    "decode_mlflow",
    "decode_records",
    "decode_split",
    "decode_v2",
]

_LISTED = 50
_SMALL = 32  # up to this many rows, checking value by value beats NumPy's cost per call
_NONE = type(None)
_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_V2_NUMBERS = frozenset(
    ["FP16", "FP32", "FP64", *(f"{s}INT{b}" for s in ("", "U") for b in (8, 16, 32, 64))]
)
_V2_TYPES = _V2_NUMBERS | {"BOOL", "BYTES"}
_EARLIEST, _LATEST = datetime(1677, 9, 22), datetime(2262, 4, 11)  # datetime64[ns] span
_EPOCH, _MICROSECOND, _NAT = datetime(1970, 1, 1), timedelta(microseconds=1), -(2**63)
_TRUE, _FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})
_ISO = "an ISO-8601 date such as '2024-05-31' or '2024-05-31T12:00:00Z'"


class _Absent:
    """Stands for a key a record lacks (unlike null, which is a value)."""


_ABSENT = _Absent()


@dataclass(frozen=True)
class InputColumn:
    """One model input: its kind and what training recorded about it.

    ``recorded`` is the recorded data kind (integer, float, boolean, string, datetime),
    or ``None`` when the schema does not know the column.
    """

    name: str
    kind: Literal["numeric", "categorical", "datetime"]
    nullable: bool = True
    categories: frozenset[str] | None = None
    integer: bool = False
    recorded: str | None = None

    @property
    def boolean(self) -> bool:
        """Whether training saw true/false here, so JSON booleans are accepted."""
        if self.recorded == "boolean":
            return True
        return self.categories is not None and not self.categories.isdisjoint({"True", "False"})


@dataclass(frozen=True)
class InputSpec:
    """The inputs a model version takes, in feature order, and the request limits."""

    columns: tuple[InputColumn, ...]
    reject_unseen: bool = False
    max_rows: int = 10_000

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ModelyardError(f"max_rows must be at least 1, got {self.max_rows}")

    @functools.cached_property
    def names(self) -> list[str]:
        """The input column names, in feature order (do not change the list)."""
        return [column.name for column in self.columns]

    @functools.cached_property
    def layout(self) -> ColumnLayout:
        """Where each input sits in the decoded blocks (one layout per spec)."""
        return ColumnLayout(
            tuple(column.name for column in self.columns),
            tuple(column.kind for column in self.columns),
        )

    @functools.cached_property
    def _plan(self) -> _FastPlan:
        return _FastPlan.of(self)

    @functools.cached_property
    def _record_getters(self) -> tuple[Callable[[Any], tuple[Any, ...]] | None, ...]:
        return tuple(_row_getter(names) if names else None for names in self.layout.names)

    @classmethod
    def from_version(cls, version: ModelVersion, *, max_rows: int) -> InputSpec:
        """The inputs of a registered version, from its lineage and spec.

        Raises:
            ModelyardError: the version's lineage records no feature order.
        """
        from modelyard.data.schema import DataSchema

        features = version.lineage.get("features") or {}
        order = features.get("feature_order")
        if not isinstance(order, list) or not order:
            raise ModelyardError(
                f"version {version.ref} records no input columns "
                "(lineage.features.feature_order); train it again to serve it"
            )
        numeric = set(features.get("numeric") or ())
        categorical = set(features.get("categorical") or ())
        schema = version.lineage.get("schema")
        recorded = DataSchema.model_validate(schema) if schema else None
        columns = []
        for name in order:
            kind: Literal["numeric", "categorical", "datetime"] = "datetime"
            if name in numeric or name in categorical:
                kind = "numeric" if name in numeric else "categorical"
            known = recorded.get(name) if recorded is not None else None
            if known is None:
                columns.append(InputColumn(name=name, kind=kind))
                continue
            categories = None
            if kind == "categorical" and known.categories is not None:
                categories = frozenset(known.categories)
            columns.append(
                InputColumn(
                    name=name,
                    kind=kind,
                    nullable=known.nullable,
                    categories=categories,
                    integer=known.kind == "integer",
                    recorded=known.kind,
                )
            )
        encode = (version.spec.get("features") or {}).get("encode") or {}
        reject = encode.get("unknown") == "error"
        return cls(tuple(columns), reject_unseen=reject, max_rows=max_rows)


@dataclass(frozen=True)
class InputProblem:
    """One way a request breaks the model's inputs; ``message`` says where, what and fix."""

    row: int | None
    column: str | None
    kind: str
    message: str


class RequestValidationError(DataValidationError):
    """A request does not fit the model's inputs (HTTP 422).

    ``problems`` lists the first 50 problems; ``total`` counts them all.
    """

    def __init__(self, problems: list[InputProblem], *, total: int | None = None) -> None:
        self.total = max(total or 0, len(problems))
        counted = f"{self.total} problem{'s' if self.total != 1 else ''}"
        if self.total > len(problems):
            counted += f", the first {len(problems)} listed"
        lines = [f"the request does not fit the model's inputs ({counted}):"]
        lines += [f"  {problem.message}" for problem in problems]
        super().__init__("\n".join(lines), problems=problems)
        self.problems: list[InputProblem] = problems


class _Problems:
    """Collects problems: counts all, keeps the first few."""

    __slots__ = ("listed", "total")

    def __init__(self) -> None:
        self.listed: list[InputProblem] = []
        self.total = 0

    def add(self, row: int | None, column: str | None, kind: str, detail: str) -> None:
        self.total += 1
        if len(self.listed) < _LISTED:
            where = [f"row {row}"] if row is not None else []
            where += [f"column {column!r}"] if column is not None else []
            message = f"{', '.join(where)}: {detail}" if where else detail
            self.listed.append(InputProblem(row, column, kind, message))

    def check(self) -> None:
        if self.total:
            raise RequestValidationError(self.listed, total=self.total)


def _fail(kind: str, detail: str) -> NoReturn:
    problems = _Problems()
    problems.add(None, None, kind, detail)
    raise RequestValidationError(problems.listed)


def _check_count(rows: int, spec: InputSpec) -> int:
    if rows > spec.max_rows:
        _fail("too_many_rows", f"{rows} rows, more than the {spec.max_rows} allowed per request")
    if rows == 0:
        _fail("empty", "the request has no rows")
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict | list | tuple):
        return "an object" if isinstance(value, dict) else "a list"
    return repr(value)[:40]


# -- values -----------------------------------------------------------------------------


def _empty(column: InputColumn, row: int, value: Any, problems: _Problems) -> None:
    """Report an absent key, or a null where training had no missing values."""
    if value is _ABSENT:
        detail = "missing from this row; every row needs every input column"
        problems.add(row, column.name, "missing_column", detail)
    elif not column.nullable:
        detail = "null, but training had no missing values here; send a value"
        problems.add(row, column.name, "null_value", detail)


def _number(column: InputColumn, row: int, value: Any, problems: _Problems) -> float:
    kind = type(value)
    if kind is float and math.isfinite(value):
        return value  # type: ignore[no-any-return]
    if kind is int:
        try:
            return float(value)
        except OverflowError:  # reported below
            pass
    if value is None or value is _ABSENT or (kind is float and value != value):
        _empty(column, row, None if kind is float else value, problems)
        return math.nan
    hint = ""
    if isinstance(value, bool):
        if column.boolean:
            return float(value)
        hint = " (JSON booleans are not numbers)"
    elif isinstance(value, int | float) and kind not in (int, float):
        return _number(column, row, (float if isinstance(value, float) else int)(value), problems)
    elif isinstance(value, str):
        try:
            float(value)
            hint = " (text: send numbers without quotes)"
        except ValueError:
            pass
    finite = isinstance(value, int | float) and not isinstance(value, bool)
    expected = "a finite 64-bit number" if finite else "a number"
    problems.add(row, column.name, "wrong_type", f"expected {expected}, found {_show(value)}{hint}")
    return math.nan


def _category(
    column: InputColumn, row: int, value: Any, problems: _Problems, known: frozenset[str] | None
) -> str | None:
    if isinstance(value, str):
        text = str(value)
    elif value is None or value is _ABSENT or (isinstance(value, float) and value != value):
        _empty(column, row, None if isinstance(value, float) else value, problems)
        return None
    elif isinstance(value, bool) and not column.boolean:
        detail = f"expected text, found {_show(value)}; training had no true/false values here"
        problems.add(row, column.name, "wrong_type", detail)
        return None
    elif isinstance(value, bool | int):
        text = str(value) if isinstance(value, bool) else str(int(value))
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(float(value))
    else:
        detail = f"expected text or a number, found {_show(value)}"
        problems.add(row, column.name, "wrong_type", detail)
        return None
    if known is not None and text not in known:
        listed = sorted(known)
        shown = ", ".join(map(repr, listed[:10])) or "none"
        shown += f", ... ({len(listed)} in all)" if len(listed) > 10 else ""
        detail = f"{_show(text)} was never seen in training; known: {shown}"
        problems.add(row, column.name, "unseen_category", detail)
    return text


def _datetime(column: InputColumn, row: int, value: Any, problems: _Problems) -> int:
    """Microseconds since 1970 (NaT's integer when missing or wrong)."""
    if value is None or value is _ABSENT:
        _empty(column, row, value, problems)
        return _NAT
    reason = ""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            reason = " (not ISO-8601)"
        else:
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            if _EARLIEST <= parsed <= _LATEST:
                return (parsed - _EPOCH) // _MICROSECOND
            reason = " (outside the years 1678 to 2261)"
    problems.add(row, column.name, "wrong_type", f"expected {_ISO}, found {_show(value)}{reason}")
    return _NAT


def _decode_column(
    column: InputColumn, values: Sequence[Any], problems: _Problems, reject_unseen: bool
) -> Sequence[Any] | np.ndarray:
    """One column's checked values (a list, or an array when the request is large).

    Numbers come back as floats (NaN for missing), categories as ``str`` or ``None``,
    dates as a ``datetime64[ns]`` array; the vectorised path only when every value fits.
    """
    large = len(values) > _SMALL
    allowed = {_NONE} if column.nullable else set()
    if column.kind == "numeric":
        if large and set(map(type, values)) <= allowed | {int, float}:
            try:
                numbers = np.array(values, dtype=np.float64)
            except OverflowError:
                pass
            else:
                finite = np.isfinite(numbers)
                if finite.all() or (column.nullable and not np.isinf(numbers).any()):
                    return numbers
        return [_number(column, row, value, problems) for row, value in enumerate(values)]
    if column.kind == "categorical":
        known = column.categories if reject_unseen else None
        texts_only = large and set(map(type, values)) <= allowed | {str}
        if texts_only and (known is None or set(values) - {None} <= known):
            return values
        return [_category(column, row, value, problems, known) for row, value in enumerate(values)]
    # Integers, not datetime objects: NumPy converts those ten times slower.
    ticks = [_datetime(column, row, value, problems) for row, value in enumerate(values)]
    return np.array(ticks, dtype=np.int64).view("datetime64[us]").astype("datetime64[ns]")


_BLOCK_DTYPES = {
    "numeric": np.dtype(np.float64),
    "categorical": np.dtype(object),
    "datetime": np.dtype("datetime64[ns]"),
}


def _block(parts: list[Sequence[Any] | np.ndarray], kind: str, rows: int) -> np.ndarray:
    """Checked columns of one kind as one C-contiguous ``[rows, len(parts)]`` block."""
    dtype = _BLOCK_DTYPES[kind]
    if not parts:
        return np.empty((rows, 0), dtype=dtype)
    if rows > _SMALL:
        return np.stack([np.asarray(part, dtype=dtype) for part in parts], axis=1)
    by_column = np.array(parts, dtype=dtype)  # [columns, rows]: one call for every value
    if by_column.shape != (len(parts), rows):  # an object cell holding a sequence, say
        by_column = np.empty((len(parts), rows), dtype=dtype)
        for index, part in enumerate(parts):
            by_column[index, :] = part
    return np.ascontiguousarray(by_column.T)


@dataclass(frozen=True)
class _FastPlan:
    """What the fast path of small requests needs of a spec, worked out once."""

    numeric_nullable: np.ndarray  # bool, one per numeric input
    categorical_nullable: tuple[bool, ...]
    categorical_known: tuple[frozenset[str] | None, ...] | None  # None: any category

    @classmethod
    def of(cls, spec: InputSpec) -> _FastPlan:
        numeric = [column for column in spec.columns if column.kind == "numeric"]
        categorical = [column for column in spec.columns if column.kind == "categorical"]
        known = None
        if spec.reject_unseen and any(column.categories is not None for column in categorical):
            known = tuple(column.categories for column in categorical)
        return cls(
            numeric_nullable=np.array([column.nullable for column in numeric], dtype=bool),
            categorical_nullable=tuple(column.nullable for column in categorical),
            categorical_known=known,
        )


def _row_getter(positions: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``row -> (row[p] for p in positions)`` as a tuple, in C (itemgetter)."""
    if len(positions) == 1:
        key = positions[0]
        return lambda row: (row[key],)
    return itemgetter(*positions)


_NULLABLE_NUMBER_TYPES = frozenset({int, float, _NONE})


def _fast_numeric(values: list[tuple[Any, ...]], plan: _FastPlan) -> np.ndarray | None:
    """``[rows, columns]`` float64 when every value is a plain valid number, else None.

    A whole-request check: one ``set(map(type, ...))`` and one array conversion instead
    of a check per value. Anything unusual (booleans, text, infinities, a null where
    none is allowed) returns None, and the careful path finds and reports it.
    """
    types = set(map(type, chain.from_iterable(values)))
    if not types <= _NULLABLE_NUMBER_TYPES:
        return None
    if _NONE in types:
        values = [tuple(math.nan if v is None else v for v in row) for row in values]
    try:
        block = np.array(values, dtype=np.float64)
    except OverflowError:
        return None
    finite = np.isfinite(block)
    if finite.all():
        return block
    missing = ~finite
    if np.isinf(block).any() or (missing & ~plan.numeric_nullable).any():
        return None
    return block


def _fast_categorical(values: list[tuple[Any, ...]], plan: _FastPlan) -> np.ndarray | None:
    """``[rows, columns]`` object block when every value is known text, else None."""
    types = set(map(type, chain.from_iterable(values)))
    if types != {str} and types != {str, _NONE} and types != {_NONE}:
        return None
    if _NONE in types:
        nullable = plan.categorical_nullable
        for row in values:
            for value, allowed in zip(row, nullable, strict=True):
                if value is None and not allowed:
                    return None
    known = plan.categorical_known
    if known is not None:
        for row in values:
            for value, categories in zip(row, known, strict=True):
                if categories is not None and value is not None and value not in categories:
                    return None
    block = np.empty((len(values), len(values[0])), dtype=object)
    block[:] = values
    return block


def _assemble(
    spec: InputSpec,
    lookup: Callable[[InputColumn], Sequence[Any] | None],
    given: Iterable[str],
    problems: _Problems,
    rows: int,
    by_row: tuple[Callable[[Any], tuple[Any, ...]] | None, ...] | None = None,
    table: Sequence[Any] = (),
) -> ColumnBlocks:
    """Decode each input column ``lookup`` finds; report those it does not.

    A small request may be given ``by_row``: per kind, a getter that takes a row of
    ``table`` to that kind's values (in layout order). Numeric and categorical inputs are
    then checked and converted a whole block at once when every value is plainly valid;
    otherwise (and for dates) column by column, value by value, naming each problem.
    """
    fast: dict[str, np.ndarray] = {}
    if by_row is not None:
        plan = spec._plan
        for kind, check in (("numeric", _fast_numeric), ("categorical", _fast_categorical)):
            getter = by_row[KINDS.index(kind)]
            if getter is None:
                continue
            try:
                by_kind = list(map(getter, table))
            except KeyError:  # a row lacks a column: the careful path says which
                continue
            block = check(by_kind, plan)
            if block is not None:
                fast[kind] = block
    parts: dict[str, list[Sequence[Any] | np.ndarray]] = {kind: [] for kind in KINDS}
    for column in spec.columns:
        if column.kind in fast:
            continue
        values = lookup(column)
        if values is None:
            close = difflib.get_close_matches(column.name, [str(name) for name in given], n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            problems.add(None, column.name, "missing_column", f"missing{hint}")
        else:
            decoded = _decode_column(column, values, problems, spec.reject_unseen)
            parts[column.kind].append(decoded)
    problems.check()
    blocks = tuple(
        fast[kind] if kind in fast else _block(parts[kind], kind, rows) for kind in KINDS
    )
    return ColumnBlocks(spec.layout, blocks, rows)  # type: ignore[arg-type]


# -- shapes -----------------------------------------------------------------------------


def decode_records(records: object, spec: InputSpec) -> tuple[Columns, int]:
    """Decode rows given as objects ``[{column: value}, ...]``; one object is one row.

    Raises:
        RequestValidationError: every problem found (see the module docstring).
    """
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        _fail("malformed", f"expected a list of objects {{column: value}}, found {_show(records)}")
    rows = _check_count(len(records), spec)
    problems = _Problems()
    if not set(map(type, records)) <= {dict}:
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                detail = f"expected an object {{column: value}}, found {_show(record)}"
                problems.add(row, None, "malformed", detail)
        problems.check()

    names = spec.names
    table: dict[str, Sequence[Any]] | None = None

    def by_column() -> dict[str, Sequence[Any]]:
        try:  # row by row while each record is in the CPU cache: twice as fast as by column
            by_row = map(_row_getter(names), records)
            return dict(zip(names, zip(*by_row, strict=True), strict=True))
        except KeyError:  # some record lacks a column: find which, column by column
            return {}

    def lookup(column: InputColumn) -> Sequence[Any] | None:
        nonlocal table
        if table is None:
            table = by_column()
        if column.name in table:
            return table[column.name]
        values = list(map(dict.get, records, repeat(column.name), repeat(_ABSENT)))
        if values[0] is _ABSENT and values.count(_ABSENT) == rows:
            return None
        return values

    getters = spec._record_getters if rows <= _SMALL else None
    decoded = _assemble(spec, lookup, records[0].keys(), problems, rows, getters, records)
    return decoded, rows


def decode_split(columns: object, data: object, spec: InputSpec) -> tuple[Columns, int]:
    """Decode ``columns`` (names) and ``data`` (rows: lists of values in that order).

    Raises:
        RequestValidationError: every problem found.
    """
    return _decode_rows(columns, data, spec, "one per name in 'columns'")


def _decode_rows(
    columns: object,
    data: object,
    spec: InputSpec,
    width_hint: str,
    parse: Callable[[InputColumn, Sequence[Any]], list[Any]] | None = None,
) -> tuple[Columns, int]:
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        _fail("malformed", f"expected 'columns' to be a list of names, found {_show(columns)}")
    if not isinstance(data, list):
        _fail("malformed", f"expected 'data' to be a list of rows, found {_show(data)}")
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        _fail("malformed", f"columns {', '.join(map(repr, twice))} are named more than once")
    rows = _check_count(len(data), spec)
    width = len(columns)
    problems = _Problems()
    for row, values in enumerate(data):
        if not isinstance(values, list):
            problems.add(
                row, None, "malformed", f"expected a list of values, found {_show(values)}"
            )
        elif len(values) != width:
            detail = f"has {len(values)} values, expected {width} ({width_hint})"
            problems.add(row, None, "malformed", detail)
    problems.check()
    position = {name: index for index, name in enumerate(columns)}

    def lookup(column: InputColumn) -> list[Any] | None:
        index = position.get(column.name)
        if index is None:
            return None
        values = list(map(itemgetter(index), data))
        return values if parse is None else parse(column, values)

    getters = None
    if parse is None and rows <= _SMALL:
        getters = tuple(
            _row_getter([position[name] for name in names])
            if names and all(name in position for name in names)
            else None
            for names in spec.layout.names
        )
    return _assemble(spec, lookup, columns, problems, rows, getters, data), rows


def decode_columnar(columns: object, spec: InputSpec) -> tuple[Columns, int]:
    """Decode ``{column: [values]}``; a value that is not a list is a one-row column.

    Raises:
        RequestValidationError: every problem found.
    """
    if not isinstance(columns, dict):
        _fail("malformed", f"expected an object {{column: [values]}}, found {_show(columns)}")
    lists = {name: value if isinstance(value, list) else [value] for name, value in columns.items()}
    wanted = {name: len(lists[name]) for name in spec.names if name in lists}
    if len(set(wanted.values())) > 1:
        counts = ", ".join(f"{name!r}: {count}" for name, count in wanted.items())
        _fail("malformed", f"the columns have different numbers of values ({counts})")
    rows = _check_count(next(iter(wanted.values()), 1), spec)
    return _assemble(spec, lambda column: lists.get(column.name), lists, _Problems(), rows), rows


def decode_v2(inputs: object, spec: InputSpec) -> tuple[Columns, int]:
    """Decode Open Inference Protocol V2 ``inputs``: one tensor per column.

    Each tensor is ``{name, shape: [n] or [n, 1], datatype, data}``, ``data`` flat or
    nested ``[[v], [v]]``. One ``[n, k]`` tensor whose ``parameters.columns`` names its
    ``k`` columns is accepted too. Numeric columns take FP*/INT*/UINT* tensors,
    categorical ones those or BYTES, datetime ones BYTES; BOOL fits true/false columns.

    Raises:
        RequestValidationError: every problem found.
    """
    if not isinstance(inputs, list) or not inputs:
        _fail("malformed", f"expected 'inputs': a non-empty list of tensors, found {_show(inputs)}")
    problems = _Problems()
    tensors: dict[str, tuple[list[Any], str | None]] = {}
    rows: int | None = None
    for index, tensor in enumerate(inputs):
        found = _v2_tensor(tensor, f"inputs[{index}]", problems)
        if found is None:
            continue
        count, named = found
        if rows is None:
            rows = _check_count(count, spec)
        elif count != rows:
            detail = f"inputs[{index}] has {count} rows, inputs[0] {rows}; give each the same"
            problems.add(None, None, "malformed", detail)
        for name in named:
            if name in tensors:
                problems.add(None, name, "malformed", "given by more than one tensor")
        tensors.update(named)
    problems.check()

    def lookup(column: InputColumn) -> list[Any] | None:
        if column.name not in tensors:
            return None
        values, datatype = tensors[column.name]
        allowed = {"numeric": _V2_NUMBERS, "categorical": _V2_NUMBERS | {"BYTES"}}.get(
            column.kind, frozenset({"BYTES"})
        ) | ({"BOOL"} if column.boolean else set())
        if datatype is None or datatype in allowed:
            return values
        usual = " or ".join(sorted(allowed & {"FP64", "INT64", "BYTES", "BOOL"}))
        detail = f"datatype {datatype} does not fit a {column.kind} column; send {usual}"
        problems.add(None, column.name, "wrong_type", detail)
        return []

    assert rows is not None  # a tensor was decoded, or problems.check() raised
    return _assemble(spec, lookup, tensors, problems, rows), rows


def _v2_tensor(
    tensor: Any, where: str, problems: _Problems
) -> tuple[int, dict[str, tuple[list[Any], str | None]]] | None:
    """A tensor's row count and columns, or ``None`` once the reason is reported."""
    if not isinstance(tensor, dict):
        found = f"found {_show(tensor)}"
        problems.add(None, None, "malformed", f"{where}: expected a tensor object, {found}")
        return None
    name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
    datatype = tensor.get("datatype")
    parameters = tensor.get("parameters")
    names = parameters.get("columns") if isinstance(parameters, dict) else None
    detail: str | None = None
    if not isinstance(name, str):
        detail = f"'name' must be the column name, found {_show(name)}"
    elif not isinstance(datatype, str) or datatype not in _V2_TYPES:
        detail = (
            f"'datatype' must be one of {', '.join(sorted(_V2_TYPES))}, found {_show(datatype)}"
        )
    elif not (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(type(size) is int and size >= 0 for size in shape)
    ):
        detail = f"'shape' must be [rows] or [rows, 1], found {_show(shape)}"
    elif not isinstance(data, list):
        detail = f"'data' must be a list of values, found {_show(data)}"
    else:
        count, width = shape[0], shape[-1] if len(shape) == 2 else 1
        if width != 1 and not (
            isinstance(names, list) and len(names) == width and all(type(n) is str for n in names)
        ):
            detail = f"shape {shape} needs parameters.columns naming its {width} columns"
        elif data and isinstance(data[0], list):
            if len(data) != count or any(
                type(item) is not list or len(item) != width for item in data
            ):
                detail = f"nested 'data' must hold {count} lists of {width} values, as 'shape' says"
            data = [value for item in data if isinstance(item, list) for value in item]
        if detail is None and len(data) != count * width:
            detail = f"'data' has {len(data)} values, shape {shape} needs {count * width}"
    if detail is not None:
        problems.add(
            None, name if isinstance(name, str) else None, "malformed", f"{where}: {detail}"
        )
        return None
    assert isinstance(name, str) and isinstance(data, list) and isinstance(datatype, str)
    if width == 1:
        return count, {name: (data, datatype)}
    assert isinstance(names, list)
    return count, {column: (data[index::width], None) for index, column in enumerate(names)}


def decode_mlflow(payload: object, spec: InputSpec) -> tuple[Columns, int]:
    """Decode an MLflow scoring request (MLflow 2 and 3 ``/invocations`` JSON).

    Exactly one of ``dataframe_split`` ``{columns, data, index?}``, ``dataframe_records``
    (a list of rows), ``instances`` (a list of rows) or ``inputs`` (a list of rows, or
    ``{column: [values]}``); rows given as lists follow the model's feature order.
    ``params`` and other keys are ignored.

    Raises:
        RequestValidationError: every problem found.
    """
    accepted = ", ".join(map(repr, _MLFLOW_KEYS))
    if not isinstance(payload, dict):
        _fail("malformed", f"expected an object with one of {accepted}, found {_show(payload)}")
    found = [key for key in _MLFLOW_KEYS if key in payload]
    if len(found) != 1:
        keys = ", ".join(map(repr, payload)) or "none"
        _fail("malformed", f"expected exactly one of {accepted} (and 'params'); found: {keys}")
    key = found[0]
    body = payload[key]
    if key == "dataframe_split":
        if not isinstance(body, dict) or "columns" not in body:
            _fail("malformed", "'dataframe_split' must be an object {columns, data}")
        return decode_split(body["columns"], body.get("data"), spec)
    if key == "inputs" and isinstance(body, dict):
        return decode_columnar(body, spec)
    if not isinstance(body, list):
        _fail("malformed", f"'{key}' must be a list of rows, found {_show(body)}")
    if not body or isinstance(body[0], dict) or key == "dataframe_records":
        return decode_records(body, spec)
    if isinstance(body[0], list):
        order = ", ".join(spec.names[:10]) + (", ..." if len(spec.columns) > 10 else "")
        return _decode_rows(spec.names, body, spec, f"one per model input, in order: {order}")
    if len(spec.columns) == 1:
        return decode_columnar({spec.columns[0].name: body}, spec)
    _fail("malformed", f"'{key}' must be a list of rows (objects or lists), found single values")


def decode_csv(text: str, spec: InputSpec) -> tuple[Columns, int]:
    """Decode CSV text with a header row; an empty field is null.

    Raises:
        RequestValidationError: every problem found.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    table: list[list[str]] = []
    try:
        for line in reader:
            if line:
                table.append(line)
            if len(table) > spec.max_rows + 1:
                _fail("too_many_rows", f"more than the {spec.max_rows} rows allowed per request")
    except csv.Error as error:
        _fail("malformed", f"not valid CSV at line {reader.line_num}: {error}")
    if not table:
        _fail("empty", "the CSV text is empty; send a header row, then one line per row")
    return _decode_rows(table[0], table[1:], spec, "one per name in the header", _csv_values)


def _csv_values(column: InputColumn, texts: Sequence[Any]) -> list[Any]:
    """CSV fields as the JSON values they stand for, by the column's kind."""
    numeric = column.kind == "numeric" or (
        column.kind == "categorical" and column.recorded in ("integer", "float")
    )
    if numeric:
        try:  # every field a number: parse all at once
            return list(map(float, texts))
        except ValueError:
            return [_csv_number(text) for text in texts]
    if column.boolean:
        return [
            text in _TRUE if text in _TRUE or text in _FALSE else text or None for text in texts
        ]
    return [text or None for text in texts]


def _csv_number(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text  # reported as it is
