"""The input schema a model records at training time, and checks of new data against it.

:func:`infer_schema` records each column's kind, whether it had missing values, its
categories (text and boolean columns, and any column named as categorical) and its
numeric range. :func:`validate_frame` lists *every* way a frame breaks that record;
:func:`check_frame` raises them together as one :class:`DataValidationError`.

The checks are the input contract's (:mod:`modelyard.contract`), through its pandas
front: a frame is judged value by value exactly as a serving request holding the same
values. Safe coercions are not problems: integers in a float column, floats in an
integer column (the pipeline computes in floats), and numbers in a categorical column,
which compare by their category text (``2`` matches category ``"2"``, ``20.0`` matches
``"20"``). Text in a numeric column is a problem, as are numbers in a true/false
column and dates that are not ISO-8601 text (or datetime values).

Example:
    >>> frame = pd.DataFrame({"rooms": [2, 3, 4], "zone": ["A", "B", "A"]})
    >>> schema = infer_schema(frame)
    >>> [p.kind for p in validate_frame(pd.DataFrame({"rooms": [9], "zone": ["C"]}), schema)]
    ['out_of_range', 'unseen_category']
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable
from typing import Literal

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

from modelyard.contract.frame import check_frame_columns
from modelyard.contract.model import InputContract
from modelyard.contract.problems import ProblemGroup
from modelyard.contract.record import ColumnSchema, DataSchema
from modelyard.contract.record import RecordedKind as Kind
from modelyard.contract.text import category_texts
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

ProblemKind = Literal[
    "missing_column",
    "extra_column",
    "wrong_type",
    "unseen_category",
    "out_of_range",
    "null_value",
    "invalid_text",
    "text_too_long",
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
    """The text form categories are compared by (:func:`modelyard.contract.category_text`):
    ``2`` and ``2.0`` give ``"2"``.

    ``values`` must hold no missing values.
    """
    return pd.Series(category_texts(values), index=values.index, dtype=object)


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
    contract = InputContract.from_schema(
        schema,
        [name for name in checked if name in present],
        reject_unseen=unseen_categories == "error",
        max_rows=max(len(df), 1),
        ranges="refuse" if check_ranges else "ignore",
        range_tolerance=range_tolerance,
        max_columns=max(len(checked), 1),
    )
    _, found = check_frame_columns(df, contract)
    groups = sorted(
        found.groups.values(),
        key=lambda group: (contract.names.index(str(group.column)), _ORDER.index(group.kind)),
    )
    problems.extend(_problem(group, contract) for group in groups)
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

_ORDER = (
    "null_value",
    "wrong_type",
    "invalid_text",
    "text_too_long",
    "unseen_category",
    "out_of_range",
)
_WANTED = {
    "integer": "whole numbers",
    "float": "numbers",
    "boolean": "true/false values",
    "datetime": "dates",
    "string": "text",
}


def _problem(group: ProblemGroup, contract: InputContract) -> Problem:
    """One problem of the report: every value of one kind of problem in one column."""
    name = str(group.column)
    column = contract.by_name[name]
    rows = _group_rows(group.rows, group.count)
    if group.kind == "null_value":
        message = (
            f"column {name!r} has {_counted(group.count, 'missing value')} (rows {rows}) but "
            "had none in training; fill them"
        )
    elif group.kind == "wrong_type":
        kind = column.recorded or {"numeric": "float", "datetime": "datetime"}.get(
            column.kind, "string"
        )
        example = group.examples[0] if group.examples else None
        message = (
            f"column {name!r} expects {_WANTED[kind]} ({kind}) but has "
            f"{_counted(group.count, 'other value')}, e.g. {example!r}, at rows {rows}"
        )
    elif group.kind == "unseen_category":
        examples = ", ".join(map(repr, group.examples))
        message = (
            f"column {name!r} has {_counted(group.count, 'value')} never seen in training "
            f"({examples}) at rows {rows}; "
            f"known: {_categories_text(sorted(column.categories or ()))}"
        )
    elif group.kind == "out_of_range":
        bounds = contract.bounds
        assert bounds is not None
        position = contract.layout.index[name][1]
        low, high = float(bounds[0][position]), float(bounds[1][position])
        message = (
            f"column {name!r} has {_counted(group.count, 'value')} outside the training range "
            f"[{low:g}, {high:g}], e.g. {group.examples[0]:g}, at rows {rows}"
        )
    else:
        message = f"column {name!r} has {_counted(group.count, 'value')} (rows {rows}): " + (
            group.detail
        )
    return Problem(column=name, kind=group.kind, message=message, rows=list(group.rows))  # type: ignore[arg-type]


# -- helpers ---------------------------------------------------------------------------


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _group_rows(rows: list[int], count: int) -> str:
    return ", ".join(map(str, rows)) + (", ..." if count > len(rows) else "")


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
