"""The contract's JSON front: parsed JSON (or CSV text made JSON values) into columns.

Each decoder takes one generic request shape and returns the model's inputs as
:class:`~modelyard.types.ColumnBlocks` (one row-major block per kind, which reads as
one NumPy array per input, in feature order), plus the row count. No pandas on this
path. Protocol-specific envelopes (V2 tensors, MLflow keys, CSV) are parsed by their
protocol modules into these shapes.

Rules (each break is an :class:`~modelyard.contract.problems.InputProblem`; all are
counted, the first 50 listed):

- every input column must be given (``missing_column``, with a close match among the
  names given when there is one); other columns are ignored; more names than the
  contract's ``max_columns`` is ``too_many_columns``, a name given twice ``malformed``;
- null is accepted where the training data had missing values, else ``null_value``;
- numeric columns take JSON numbers. A fraction in an integer column is accepted (the
  pipeline computes in floats). Text such as ``"12.5"``, booleans (unless the column
  was recorded as true/false) and infinities are ``wrong_type``: text is never parsed;
- categorical columns take text, or numbers written by the category-text rule
  (:mod:`modelyard.contract.text`: ``20`` and ``20.0`` give ``"20"``, ``1e20`` gives
  ``"1e+20"``); booleans give ``"True"``/``"False"`` only where training had those
  categories, and a column recorded as true/false takes no other numbers. With
  ``encode.unknown: error`` a category unseen in training is ``unseen_category``;
- datetime columns take ISO-8601 text; offsets become naive UTC, as in training;
- text must be Unicode scalar values (no lone surrogates: ``invalid_text``) and no
  longer than the column's ``max_length`` (``text_too_long``);
- with ``ranges: refuse`` a number outside its training range is ``out_of_range``;
- more rows than ``max_rows`` is ``too_many_rows``, none is ``empty``; a request of the
  wrong shape is ``malformed``.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Any

import numpy as np

from modelyard.contract.model import InputColumn, InputContract
from modelyard.contract.problems import Problems, fail, show
from modelyard.contract.text import is_valid_text
from modelyard.contract.values import ABSENT, SMALL, check_ranges, decode_column, to_block
from modelyard.types import KINDS, ColumnBlocks, Columns

__all__ = [
    "assemble",
    "check_columnar",
    "check_count",
    "check_names",
    "check_width",
    "decode_columnar",
    "decode_records",
    "decode_rows",
    "decode_split",
    "row_getter",
]

_NONE = type(None)
_NO_TEXT = np.array(None, dtype=object)  # null, as an array np.equal compares with
_DTYPES = (np.dtype(np.float64), np.dtype(object), np.dtype("datetime64[ns]"))
_SUGGEST_FROM = 100  # names given, not the model's, that a missing column is compared to
_SUGGEST_FOR = 10  # missing columns that get a suggestion


def check_count(rows: int, contract: InputContract) -> int:
    """``rows``, if within the contract's limits (``too_many_rows``, ``empty``)."""
    if rows > contract.max_rows:
        fail("too_many_rows", f"{rows} rows, more than the {contract.max_rows} allowed per request")
    if rows == 0:
        fail("empty", "the request has no rows")
    return rows


def check_width(count: int, contract: InputContract, what: str = "columns") -> None:
    """Refuse more than ``max_columns`` column names in one request."""
    if count > contract.max_columns:
        fail(
            "too_many_columns",
            f"{count:,} {what}, more than the {contract.max_columns:,} allowed per "
            f"request; send only the model's {len(contract.columns)} inputs",
        )


def check_names(names: Sequence[Any], contract: InputContract, what: str = "columns") -> None:
    """Refuse more names than ``max_columns``, and any name given twice (linear time)."""
    check_width(len(names), contract, what)
    if len(set(names)) != len(names):
        twice = sorted(str(name) for name, count in Counter(names).items() if count > 1)
        shown = ", ".join(show(name) for name in twice[:10])
        shown += f", ... ({len(twice)} in all)" if len(twice) > 10 else ""
        fail("malformed", f"{what} {shown} are named more than once")


@dataclass(frozen=True)
class _FastPlan:
    """What the fast path of small requests needs of a contract, worked out once."""

    numeric_nullable: np.ndarray  # bool, one per numeric input
    categorical_nullable: tuple[bool, ...]
    categorical_nullable_mask: np.ndarray  # the same, as an array
    categorical_known: tuple[frozenset[str] | None, ...] | None  # None: any category
    categorical_length: int  # the shortest max_length of the categorical inputs
    getters: tuple[Callable[[Any], tuple[Any, ...]] | None, ...]

    @classmethod
    def of(cls, contract: InputContract) -> _FastPlan:
        found = contract.__dict__.get("_fast_plan")
        if isinstance(found, _FastPlan):
            return found
        numeric = [column for column in contract.columns if column.kind == "numeric"]
        categorical = [column for column in contract.columns if column.kind == "categorical"]
        known = None
        if contract.reject_unseen and any(column.categories is not None for column in categorical):
            known = tuple(column.categories for column in categorical)
        plan = cls(
            numeric_nullable=np.array([column.nullable for column in numeric], dtype=bool),
            categorical_nullable=tuple(column.nullable for column in categorical),
            categorical_nullable_mask=np.array([c.nullable for c in categorical], dtype=bool),
            categorical_known=known,
            categorical_length=min((column.max_length for column in categorical), default=0),
            getters=tuple(row_getter(names) if names else None for names in contract.layout.names),
        )
        object.__setattr__(contract, "_fast_plan", plan)  # cached on the frozen contract
        return plan


def row_getter(positions: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
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
    try:  # null becomes NaN, which is how a missing number is held
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
    """``[rows, columns]`` object block when every value is known, valid text, else None.

    A few rows are checked in plain loops; more, a column of the block at a time.
    """
    flat = list(chain.from_iterable(values))
    types = set(map(type, flat))
    if types != {str} and types != {str, _NONE} and types != {_NONE}:
        return None
    block = np.empty((len(values), len(values[0])), dtype=object)
    block[:] = values
    large = len(values) > SMALL
    if _NONE in types:
        if large:
            missing = np.equal(block, _NO_TEXT)
            if (missing & ~plan.categorical_nullable_mask).any():
                return None
        else:
            for row in values:
                for value, allowed in zip(row, plan.categorical_nullable, strict=True):
                    if value is None and not allowed:
                        return None
        flat = [value for value in flat if value is not None]
    if flat and (max(map(len, flat)) > plan.categorical_length or not is_valid_text("".join(flat))):
        return None
    known = plan.categorical_known
    if known is not None and large:
        for position, categories in enumerate(known):
            if categories is not None and not set(block[:, position].tolist()) - {None} <= (
                categories
            ):
                return None
    elif known is not None:
        for row in values:
            for value, categories in zip(row, known, strict=True):
                if categories is not None and value is not None and value not in categories:
                    return None
    return block


def _suggestion(name: str, given: Iterable[Any], contract: InputContract) -> str:
    """A close match for a missing column among the first names given that are not the
    model's own (bounded work whatever the request holds)."""
    others = (str(n) for n in given if isinstance(n, str) and n not in contract.by_name)
    close = difflib.get_close_matches(name, list(islice(others, _SUGGEST_FROM)), n=2)
    return f"; did you mean {' or '.join(map(show, close))}?" if close else ""


def assemble(
    contract: InputContract,
    lookup: Callable[[InputColumn], Sequence[Any] | np.ndarray | None],
    given: Collection[Any],
    problems: Problems,
    rows: int,
    by_row: tuple[Callable[[Any], tuple[Any, ...]] | None, ...] | None = None,
    table: Sequence[Any] = (),
    *,
    check: bool = True,
) -> ColumnBlocks:
    """Decode each input column ``lookup`` finds; report those it does not.

    A small request may be given ``by_row``: per kind, a getter that takes a row of
    ``table`` to that kind's values (in layout order). Numeric and categorical inputs are
    then checked and converted a whole block at once when every value is plainly valid;
    otherwise (and for dates) column by column, naming each problem.

    With ``check`` False, problems of rows are left in ``problems`` for the caller (the
    blocks hold NaN, None or NaT for the values found wrong); a missing column is still
    raised.

    Raises:
        RequestValidationError: every problem found (a missing column's, unless
            ``check``).
    """
    fast: dict[str, np.ndarray] = {}
    if by_row is not None:
        plan = _FastPlan.of(contract)
        for kind, plainly in (("numeric", _fast_numeric), ("categorical", _fast_categorical)):
            getter = by_row[KINDS.index(kind)]
            if getter is None:
                continue
            try:
                by_kind = list(map(getter, table))
            except KeyError:  # a row lacks a column: the careful path says which
                continue
            block = plainly(by_kind, plan)
            if block is not None:
                fast[kind] = block
    parts: dict[str, list[Sequence[Any] | np.ndarray]] = {kind: [] for kind in KINDS}
    suggested = 0
    missing = Problems()
    for column in contract.columns:
        if column.kind in fast:
            continue
        values = lookup(column)
        if values is None:
            hint = ""
            if suggested < _SUGGEST_FOR:
                suggested += 1
                hint = _suggestion(column.name, given, contract)
            problems.add(None, column.name, "missing_column", f"missing{hint}")
            missing.add(None, column.name, "missing_column", f"missing{hint}")
        else:
            decoded = decode_column(column, values, problems, contract.reject_unseen)
            parts[column.kind].append(decoded)
    numbers = parts["numeric"]
    complete = len(numbers) == len(contract.layout.names[0])
    # (not complete when a column is missing, or a tensor was refused whole)
    if "numeric" not in fast and complete and all(len(part) == rows for part in numbers):
        fast["numeric"] = to_block(numbers, _DTYPES[0], rows)
    if "numeric" in fast:
        check_ranges(contract, fast["numeric"], problems)
    (problems if check else missing).check()
    blocks = tuple(
        fast[kind] if kind in fast else to_block(parts[kind], dtype, rows)
        for kind, dtype in zip(KINDS, _DTYPES, strict=True)
    )
    return ColumnBlocks(contract.layout, blocks, rows)  # type: ignore[arg-type]


# -- shapes -----------------------------------------------------------------------------


def decode_records(records: object, contract: InputContract) -> tuple[Columns, int]:
    """Decode rows given as objects ``[{column: value}, ...]``; one object is one row.

    Raises:
        RequestValidationError: every problem found (see the module docstring).
    """
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        fail("malformed", f"expected a list of objects {{column: value}}, found {show(records)}")
    rows = check_count(len(records), contract)
    problems = Problems()
    if not set(map(type, records)) <= {dict}:
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                detail = f"expected an object {{column: value}}, found {show(record)}"
                problems.add(row, None, "malformed", detail)
        problems.check()
    check_width(max(map(len, records)), contract, "keys in a row")

    names = contract.names
    table: dict[str, Sequence[Any]] | None = None

    def by_column() -> dict[str, Sequence[Any]]:
        try:  # row by row while each record is in the CPU cache: twice as fast as by column
            by_row = map(row_getter(names), records)
            return dict(zip(names, zip(*by_row, strict=True), strict=True))
        except KeyError:  # some record lacks a column: find which, column by column
            return {}

    def lookup(column: InputColumn) -> Sequence[Any] | None:
        nonlocal table
        if table is None:
            table = by_column()
        if column.name in table:
            return table[column.name]
        values = list(map(dict.get, records, repeat(column.name), repeat(ABSENT)))
        if values[0] is ABSENT and values.count(ABSENT) == rows:
            return None
        return values

    getters = _FastPlan.of(contract).getters
    decoded = assemble(contract, lookup, records[0].keys(), problems, rows, getters, records)
    return decoded, rows


def decode_split(columns: object, data: object, contract: InputContract) -> tuple[Columns, int]:
    """Decode ``columns`` (names) and ``data`` (rows: lists of values in that order).

    Raises:
        RequestValidationError: every problem found.
    """
    return decode_rows(columns, data, contract, "one per name in 'columns'")


def decode_rows(
    columns: object,
    data: object,
    contract: InputContract,
    width_hint: str,
    parse: Callable[[InputColumn, Sequence[Any]], list[Any]] | None = None,
) -> tuple[Columns, int]:
    """Decode rows given as lists of values in the order of ``columns``; ``parse`` turns
    a column's raw values (CSV text, say) into JSON values first.

    Raises:
        RequestValidationError: every problem found.
    """
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        fail("malformed", f"expected 'columns' to be a list of names, found {show(columns)}")
    if not isinstance(data, list):
        fail("malformed", f"expected 'data' to be a list of rows, found {show(data)}")
    check_names(columns, contract)
    rows = check_count(len(data), contract)
    width = len(columns)
    problems = Problems()
    for row, values in enumerate(data):
        if not isinstance(values, list):
            problems.add(row, None, "malformed", f"expected a list of values, found {show(values)}")
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
    if parse is None:
        getters = tuple(
            row_getter([position[name] for name in names])
            if names and all(name in position for name in names)
            else None
            for names in contract.layout.names
        )
    return assemble(contract, lookup, columns, problems, rows, getters, data), rows


def decode_columnar(columns: object, contract: InputContract) -> tuple[Columns, int]:
    """Decode ``{column: [values]}``; a value that is not a list is a one-row column.

    Raises:
        RequestValidationError: every problem found.
    """
    decoded = check_columnar(columns, contract, Problems(), check=True)
    return decoded, decoded.rows


def check_columnar(
    columns: object, contract: InputContract, problems: Problems, *, check: bool = False
) -> ColumnBlocks:
    """:func:`decode_columnar`, leaving the problems of rows in ``problems`` (unless
    ``check``): for a caller that keeps the good rows, as batch scoring does.

    Raises:
        RequestValidationError: the request is malformed or too large, or lacks an
            input column (or, with ``check``, any problem).
    """
    if not isinstance(columns, dict):
        fail("malformed", f"expected an object {{column: [values]}}, found {show(columns)}")
    check_names(list(columns), contract)
    lists = {name: value if isinstance(value, list) else [value] for name, value in columns.items()}
    wanted = {name: len(lists[name]) for name in contract.names if name in lists}
    if len(set(wanted.values())) > 1:
        counts = ", ".join(f"{name!r}: {count}" for name, count in wanted.items())
        fail("malformed", f"the columns have different numbers of values ({counts})")
    rows = check_count(next(iter(wanted.values()), 1), contract)
    lookup = lists.get
    return assemble(
        contract, lambda column: lookup(column.name), lists, problems, rows, check=check
    )
