"""The input schema a model records at training time, and checks of new data against it.

:func:`infer_schema` records each column's kind, whether it had missing values, its
categories (text and boolean columns, and any column named as categorical) and its
numeric range. :func:`validate_frame` lists *every* way a frame breaks that record;
:func:`check_frame` raises them together as one :class:`DataValidationError`.

Safe coercions are not problems: integers in a float column, integral floats in an
integer column, and numbers in a categorical column, which compare by their text
(``2`` matches category ``"2"``, ``20.0`` matches ``"20"``). Text in a numeric column is.

Example:
    >>> frame = pd.DataFrame({"rooms": [2, 3, 4], "zone": ["A", "B", "A"]})
    >>> schema = infer_schema(frame)
    >>> [p.kind for p in validate_frame(pd.DataFrame({"rooms": [9], "zone": ["C"]}), schema)]
    ['out_of_range', 'unseen_category']
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import warnings
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
    is_numeric_dtype,
    is_object_dtype,
)
from pydantic import BaseModel, ConfigDict

from modelyard.errors import DataError, DataValidationError

__all__ = [
    "ColumnSchema",
    "DataSchema",
    "Kind",
    "Problem",
    "ProblemKind",
    "category_keys",
    "check_frame",
    "check_target",
    "column_kind",
    "infer_schema",
    "validate_frame",
]

logger = logging.getLogger(__name__)

Kind = Literal["integer", "float", "boolean", "string", "datetime"]
ProblemKind = Literal[
    "missing_column",
    "extra_column",
    "wrong_type",
    "unseen_category",
    "out_of_range",
    "null_value",
    "empty",
]
_MAX_ROWS = 5
_OBJECT_KINDS: dict[str, Kind] = {
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "boolean",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSchema(_Frozen):
    """One recorded column: kind, nullability, categories and numeric range."""

    name: str
    kind: Kind
    nullable: bool
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None


class DataSchema(_Frozen):
    """The recorded columns of a training frame, in order."""

    columns: list[ColumnSchema]

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [column.name for column in self.columns]

    def get(self, name: str) -> ColumnSchema | None:
        """The column called ``name``, or ``None``."""
        return next((column for column in self.columns if column.name == name), None)


class Problem(_Frozen):
    """One way a frame breaks a schema; ``rows`` holds up to 5 offending row positions."""

    column: str | None
    kind: ProblemKind
    message: str
    rows: list[int] = []


def column_kind(values: pd.Series) -> Kind:
    """The schema kind of a column, from its dtype (object columns: from their values)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = pd.Series(dtype.categories)
        return column_kind(categories) if len(categories) else "string"
    if is_object_dtype(dtype):
        return _OBJECT_KINDS.get(infer_dtype(values, skipna=True), "string")
    if is_bool_dtype(dtype):
        return "boolean"
    if is_integer_dtype(dtype):
        return "integer"
    if is_float_dtype(dtype):
        return "float"
    if is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def category_keys(values: pd.Series) -> pd.Series:
    """The text form categories are compared by: ``2`` and ``2.0`` give ``"2"``.

    ``values`` must hold no missing values.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = values.astype(object)
        dtype = values.dtype
    if is_bool_dtype(dtype) or is_integer_dtype(dtype):
        return values.astype(str)
    if is_float_dtype(dtype):
        numbers_ = values.to_numpy(dtype=np.float64)
        integral = np.isfinite(numbers_) & (np.floor(numbers_) == numbers_)
        integral &= np.abs(numbers_) < 2.0**63
        keys = numbers_.astype(str).astype(object)
        keys[integral] = numbers_[integral].astype(np.int64).astype(str)
        return pd.Series(keys, index=values.index, dtype=object)
    if is_object_dtype(dtype) and infer_dtype(values, skipna=True) != "string":
        return values.map(_scalar_key)
    return values.astype(str)


def _scalar_key(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number.is_integer() and abs(number) < 2.0**63:
            return str(int(number))
        return repr(number)
    return str(value)


def infer_schema(
    df: pd.DataFrame, *, categorical: Iterable[str] = (), max_categories: int = 1000
) -> DataSchema:
    """Record the schema of a training frame.

    Args:
        df: The frame to describe.
        categorical: Columns whose categories are recorded even if numeric. Names not in
            ``df`` (e.g. columns a transform creates later) are skipped.
        max_categories: Above this many distinct values, no category list is recorded
            (the column is free text or an identifier) and unseen values are not checked.

    Returns:
        The schema, JSON-ready through ``model_dump(mode="json")``.
    """
    wanted = set(categorical)
    columns = []
    for name in df.columns:
        values = df[name]
        kind = column_kind(values)
        present = values.dropna()
        categories = None
        if kind in ("string", "boolean") or name in wanted:
            distinct = sorted(set(category_keys(present).tolist()))
            if len(distinct) <= max_categories:
                categories = distinct
            else:
                logger.debug("column %r: %d categories, not recorded", name, len(distinct))
        low = high = None
        if kind in ("integer", "float") and len(present):
            finite = pd.to_numeric(present).to_numpy(dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            if len(finite):
                low, high = float(finite.min()), float(finite.max())
        columns.append(
            ColumnSchema(
                name=str(name),
                kind=kind,
                nullable=bool(len(present) < len(values)),
                categories=categories,
                min=low,
                max=high,
            )
        )
    return DataSchema(columns=columns)


def validate_frame(
    df: pd.DataFrame,
    schema: DataSchema,
    *,
    columns: Iterable[str] | None = None,
    allow_extra: bool = True,
    unseen_categories: Literal["error", "ignore"] = "error",
    check_ranges: bool = True,
    range_tolerance: float = 0.0,
) -> list[Problem]:
    """Every way ``df`` breaks ``schema``, in column order (empty if none).

    Args:
        df: The frame to check.
        schema: The recorded schema.
        columns: Check only these schema columns (e.g. the features, when the target is
            absent at serving time). Extra columns are those outside this set.
        allow_extra: Whether columns outside the checked set are fine.
        unseen_categories: ``error`` reports values outside a recorded category list.
        check_ranges: Report numbers outside the recorded range (not for categorical
            columns, which are checked by their categories).
        range_tolerance: Widen the range by this share of its span on each side.

    Raises:
        DataError: ``columns`` names a column the schema does not know.
    """
    checked = schema.names if columns is None else list(columns)
    unknown = [name for name in checked if schema.get(name) is None]
    if unknown:
        raise DataError(
            f"columns {unknown} are not in the recorded schema; known columns: "
            f"{', '.join(schema.names)}"
        )
    problems: list[Problem] = []
    if len(df) == 0:
        problems.append(Problem(column=None, kind="empty", message="the data has no rows"))
    present = [str(name) for name in df.columns]
    for name in checked:
        if name not in present:
            message = f"column {name!r} is missing{_did_you_mean(name, present)}"
            problems.append(Problem(column=name, kind="missing_column", message=message))
    if not allow_extra:
        for name in present:
            if name not in checked:
                message = (
                    f"column {name!r} is not expected; remove it (expected: {', '.join(checked)})"
                )
                problems.append(Problem(column=name, kind="extra_column", message=message))
    for name in checked:
        if name in present:
            column = schema.get(name)
            assert column is not None
            problems.extend(
                _check_column(
                    df[name],
                    column,
                    unseen_categories=unseen_categories,
                    check_ranges=check_ranges,
                    range_tolerance=range_tolerance,
                )
            )
    return problems


def check_frame(
    df: pd.DataFrame,
    schema: DataSchema,
    *,
    columns: Iterable[str] | None = None,
    allow_extra: bool = True,
    unseen_categories: Literal["error", "ignore"] = "error",
    check_ranges: bool = True,
    range_tolerance: float = 0.0,
) -> None:
    """Raise if ``df`` breaks ``schema``; the arguments are those of :func:`validate_frame`.

    Raises:
        DataValidationError: a one-line summary, then each problem on its own line;
            ``problems`` holds the :class:`Problem` list.
    """
    problems = validate_frame(
        df,
        schema,
        columns=columns,
        allow_extra=allow_extra,
        unseen_categories=unseen_categories,
        check_ranges=check_ranges,
        range_tolerance=range_tolerance,
    )
    if problems:
        plural = "s" if len(problems) != 1 else ""
        head = f"the data does not match the recorded schema ({len(problems)} problem{plural}):"
        lines = [head, *(f"  - {problem.message}" for problem in problems)]
        raise DataValidationError("\n".join(lines), problems=problems)


def check_target(
    df: pd.DataFrame, target: str, task: Literal["regression", "binary", "multiclass"]
) -> None:
    """Check that ``target`` can be learned as ``task``.

    Raises:
        DataError: the column is missing or has missing values, a regression target is
            not numeric, a binary target has not exactly 2 classes, a multiclass target
            has fewer than 3, or a class has a single row.
    """
    if target not in df.columns:
        names = [str(name) for name in df.columns]
        raise DataError(
            f"the target column {target!r} is not in the data{_did_you_mean(target, names)}"
        )
    values = df[target]
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"the target {target!r} has {_count(missing, 'missing value')} "
            f"(rows {_rows_text(missing)}); drop those rows or fill the target"
        )
    if task == "regression":
        numeric = is_numeric_dtype(values) and not is_bool_dtype(values)
        if not numeric and column_kind(values) not in ("integer", "float"):
            raise DataError(
                f"the target {target!r} must be numeric for task regression, found values "
                f"like {values.iloc[0]!r}; convert it, or use task: binary or multiclass"
            )
        return
    counts = category_keys(values).value_counts(sort=False).sort_index()
    classes = ", ".join(repr(str(key)) for key in list(counts.index)[:10])
    classes += ", ..." if len(counts) > 10 else ""
    if task == "binary" and len(counts) != 2:
        hint = "use task: multiclass" if len(counts) > 2 else "a binary task needs both classes"
        raise DataError(
            f"the target {target!r} has {len(counts)} classes ({classes}), "
            f"a binary task needs exactly 2; {hint}"
        )
    if task == "multiclass" and len(counts) < 3:
        hint = "use task: binary" if len(counts) == 2 else "a model needs at least 2 classes"
        raise DataError(
            f"the target {target!r} has {len(counts)} classes ({classes}), "
            f"a multiclass task needs at least 3; {hint}"
        )
    single = [str(key) for key, count in counts.items() if count == 1]
    if single:
        raise DataError(
            f"the target {target!r} has classes with a single row "
            f"({', '.join(map(repr, single))}); every class needs at least 2 rows to be "
            "split and evaluated; drop or merge them"
        )


# -- one column ------------------------------------------------------------------------


def _check_column(
    values: pd.Series,
    column: ColumnSchema,
    *,
    unseen_categories: str,
    check_ranges: bool,
    range_tolerance: float,
) -> list[Problem]:
    name = column.name
    problems: list[Problem] = []
    nulls = values.isna().to_numpy(dtype=bool)
    if nulls.any() and not column.nullable:
        problems.append(
            Problem(
                column=name,
                kind="null_value",
                message=f"column {name!r} has {_count(nulls, 'missing value')} (rows "
                f"{_rows_text(nulls)}) but had none in training; fill them",
                rows=_rows(nulls),
            )
        )
    positions = np.flatnonzero(~nulls)
    present = values.iloc[positions]
    if isinstance(present.dtype, pd.CategoricalDtype):
        present = present.astype(object)
    numbers_: np.ndarray | None = None
    if column.kind in ("integer", "float") and column.categories is not None:
        pass  # a numeric column used as categorical: values compare by their text form
    elif column.kind in ("integer", "float", "boolean"):
        numbers_, bad = _numbers(present, column.kind)
        if bad.any():
            problems.append(_wrong_type(name, column.kind, present, positions, bad))
    elif column.kind == "datetime":
        bad = _not_datetimes(present)
        if bad.any():
            problems.append(_wrong_type(name, column.kind, present, positions, bad))
    if column.categories is not None and unseen_categories == "error" and len(present):
        if column.kind == "boolean" and numbers_ is not None:
            # 0/1 stand for False/True; values of the wrong type are reported above.
            flags = np.where(numbers_ == 1, "True", "False")
            keys = pd.Series(flags, index=present.index).where(numbers_ == numbers_, "")
            unseen = ~keys.isin([*column.categories, ""]).to_numpy(dtype=bool)
        else:
            keys = category_keys(present)
            unseen = ~keys.isin(column.categories).to_numpy(dtype=bool)
        if unseen.any():
            examples = list(dict.fromkeys(keys[unseen].tolist()))[:_MAX_ROWS]
            problems.append(
                Problem(
                    column=name,
                    kind="unseen_category",
                    message=f"column {name!r} has {_count(unseen, 'value')} never seen in "
                    f"training ({', '.join(map(repr, examples))}) at rows "
                    f"{_rows_text(unseen, positions)}; "
                    f"known: {_categories_text(column.categories)}",
                    rows=_rows(unseen, positions),
                )
            )
    elif (
        check_ranges
        and column.categories is None
        and numbers_ is not None
        and column.kind in ("integer", "float")
        and column.min is not None
        and column.max is not None
    ):
        span = column.max - column.min
        low = column.min - range_tolerance * span
        high = column.max + range_tolerance * span
        with np.errstate(invalid="ignore"):
            outside = (numbers_ < low) | (numbers_ > high)
        if outside.any():
            first = numbers_[np.flatnonzero(outside)[0]]
            problems.append(
                Problem(
                    column=name,
                    kind="out_of_range",
                    message=f"column {name!r} has {_count(outside, 'value')} outside the "
                    f"training range [{low:g}, {high:g}], e.g. {first:g}, at rows "
                    f"{_rows_text(outside, positions)}",
                    rows=_rows(outside, positions),
                )
            )
    return problems


def _numbers(present: pd.Series, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """The values as float64 where they fit ``kind`` (NaN elsewhere), and a 'bad' mask."""
    count = len(present)
    dtype = present.dtype
    if is_bool_dtype(dtype):
        bad = np.full(count, kind != "boolean")
        return present.to_numpy(dtype=np.float64), bad
    if is_numeric_dtype(dtype):
        values = present.to_numpy(dtype=np.float64)
    elif is_object_dtype(dtype):
        is_number = present.map(_is_number).to_numpy(dtype=bool)
        values = np.full(count, np.nan)
        values[is_number] = present[is_number].astype(np.float64).to_numpy()
        if kind == "boolean":
            is_flag = present.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
            values[is_flag] = present[is_flag].astype(np.float64).to_numpy()
            is_number = is_number | is_flag
        return values, _misfits(values, kind) | ~is_number
    else:
        return np.full(count, np.nan), np.ones(count, dtype=bool)
    return values, _misfits(values, kind)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _misfits(values: np.ndarray, kind: Kind) -> np.ndarray:
    misfits: np.ndarray = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if kind == "integer":
            misfits = ~(np.isfinite(values) & (np.floor(values) == values))
        elif kind == "boolean":
            misfits = ~((values == 0) | (values == 1))
    return misfits


def _not_datetimes(present: pd.Series) -> np.ndarray:
    if is_datetime64_any_dtype(present.dtype):
        return np.zeros(len(present), dtype=bool)
    if is_numeric_dtype(present.dtype) or is_bool_dtype(present.dtype):
        return np.ones(len(present), dtype=bool)
    is_number = present.map(lambda v: isinstance(v, numbers.Number)).to_numpy(dtype=bool)
    text = present.astype(object)
    try:  # one inferred format parses fast; fall back to parsing value by value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
            failed = pd.to_datetime(text, errors="raise").isna().to_numpy(dtype=bool)
    except (ValueError, TypeError, OverflowError):
        failed = pd.to_datetime(text, errors="coerce", format="mixed").isna().to_numpy(dtype=bool)
    not_datetimes: np.ndarray = failed | is_number
    return not_datetimes


def _wrong_type(
    name: str, kind: Kind, present: pd.Series, positions: np.ndarray, bad: np.ndarray
) -> Problem:
    example = present.iloc[int(np.flatnonzero(bad)[0])]
    wanted = {
        "integer": "whole numbers",
        "float": "numbers",
        "boolean": "true/false values",
        "datetime": "dates",
        "string": "text",
    }[kind]
    return Problem(
        column=name,
        kind="wrong_type",
        message=f"column {name!r} expects {wanted} ({kind}) but has {_count(bad, 'other value')}"
        f", e.g. {_plain(example)!r}, at rows {_rows_text(bad, positions)}",
        rows=_rows(bad, positions),
    )


# -- helpers ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _count(mask: np.ndarray, noun: str) -> str:
    count = int(np.count_nonzero(mask))
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _rows(mask: np.ndarray, positions: np.ndarray | None = None) -> list[int]:
    hits = np.flatnonzero(mask)[:_MAX_ROWS]
    if positions is not None:
        hits = positions[hits]
    return [int(row) for row in hits]


def _rows_text(mask: np.ndarray, positions: np.ndarray | None = None) -> str:
    rows = ", ".join(str(row) for row in _rows(mask, positions))
    return rows + (", ..." if int(np.count_nonzero(mask)) > _MAX_ROWS else "")


def _categories_text(categories: list[str]) -> str:
    if not categories:
        return "none (the column had no values in training)"
    shown = ", ".join(repr(c) for c in categories[:10])
    return shown + (f", ... ({len(categories)} in all)" if len(categories) > 10 else "")


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"; the columns are: {shown}"
