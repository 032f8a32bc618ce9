"""The contract's checks of one column's values: the core both fronts run.

The JSON front (:mod:`modelyard.contract.json`) hands each column's parsed JSON values
here; the pandas front (:mod:`modelyard.contract.frame`) hands a frame's columns as the
same Python values (or as a float64 array, which is what a JSON number column becomes).
So the two cannot disagree: one function decides what each value means.

A column of up to 32 values is checked value by value (cheaper than NumPy's cost per
call); a larger one is checked a whole column at a time with NumPy and set operations
when every value is plainly valid, and value by value only to name the problems.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from modelyard.contract.model import InputColumn, InputContract
from modelyard.contract.problems import Problems, show
from modelyard.contract.text import category_text, category_texts, is_valid_text
from modelyard.types import KINDS, ColumnBlocks

__all__ = [
    "ABSENT",
    "SMALL",
    "check_ranges",
    "decode_column",
    "decode_inputs",
    "decode_value",
    "to_block",
]

SMALL = 32  # up to this many rows, checking value by value beats NumPy's cost per call
_NONE = type(None)
_DTYPES = (np.dtype(np.float64), np.dtype(object), np.dtype("datetime64[ns]"))
_EARLIEST, _LATEST = datetime(1677, 9, 22), datetime(2262, 4, 11)  # datetime64[ns] span
_EPOCH, _MICROSECOND, _NAT = datetime(1970, 1, 1), timedelta(microseconds=1), -(2**63)
_ISO = "an ISO-8601 date such as '2024-05-31' or '2024-05-31T12:00:00Z'"
_LONGEST_DATE = 64  # no ISO-8601 date is longer; longer text is not parsed


class _Absent:
    """Stands for a key a record lacks (unlike null, which is a value)."""


ABSENT = _Absent()


def _empty(column: InputColumn, row: int, value: Any, problems: Problems) -> None:
    """Report an absent key, or a null where training had no missing values."""
    if value is ABSENT:
        detail = "missing from this row; every row needs every input column"
        problems.add(row, column.name, "missing_column", detail)
    elif not column.nullable:
        detail = "null, but training had no missing values here; send a value"
        problems.add(row, column.name, "null_value", detail, None)


def _number(column: InputColumn, row: int, value: Any, problems: Problems) -> float:
    kind = type(value)
    if kind is float and math.isfinite(value):
        return value  # type: ignore[no-any-return]
    if kind is int:
        try:
            return float(value)
        except OverflowError:  # reported below
            pass
    if value is None or value is ABSENT or (kind is float and value != value):
        _empty(column, row, None if kind is float else value, problems)
        return math.nan
    hint = ""
    if isinstance(value, bool | np.bool_):
        if column.boolean:
            return float(value)
        hint = " (JSON booleans are not numbers)"
    elif isinstance(value, int | float | np.integer | np.floating) and kind not in (int, float):
        plain = value.item() if isinstance(value, np.generic) else value
        return _number(column, row, (float if isinstance(plain, float) else int)(plain), problems)
    elif isinstance(value, str):
        if not is_valid_text(value):
            return float(_invalid_text(column, row, value, problems))
        try:
            float(value)
            hint = " (text: send numbers without quotes)"
        except ValueError:
            pass
    finite = isinstance(value, int | float) and not isinstance(value, bool)
    expected = "a finite 64-bit number" if finite else "a number"
    detail = f"expected {expected}, found {show(value)}{hint}"
    problems.add(row, column.name, "wrong_type", detail, value)
    return math.nan


def _invalid_text(column: InputColumn, row: int, value: str, problems: Problems) -> Any:
    detail = (
        f"text {show(value)} holds a lone UTF-16 surrogate, which is not a Unicode "
        "character; send valid UTF-8 text"
    )
    problems.add(row, column.name, "invalid_text", detail, value)
    return None if column.kind == "categorical" else _NAT if column.kind == "datetime" else math.nan


def _category(
    column: InputColumn, row: int, value: Any, problems: Problems, known: frozenset[str] | None
) -> str | None:
    if isinstance(value, str):
        text = str(value)
        if len(text) > column.max_length:
            detail = (
                f"text of {len(text):,} characters, longer than the {column.max_length:,} "
                "allowed here; send the category as it was in training"
            )
            problems.add(row, column.name, "text_too_long", detail, text[:40])
            return None
        if not is_valid_text(text):
            return _invalid_text(column, row, text, problems)  # type: ignore[no-any-return]
    elif value is None or value is ABSENT or (isinstance(value, float) and value != value):
        _empty(column, row, None if isinstance(value, float) else value, problems)
        return None
    elif isinstance(value, bool | np.bool_):
        if not column.boolean:
            detail = f"expected text, found {show(value)}; training had no true/false values here"
            problems.add(row, column.name, "wrong_type", detail, value)
            return None
        text = str(bool(value))
    elif isinstance(value, int | float | np.integer | np.floating):
        if column.recorded == "boolean":
            detail = f"expected true or false, found {show(value)}"
            problems.add(row, column.name, "wrong_type", detail, value)
            return None
        text = category_text(value)  # type: ignore[assignment]
        if text is None:  # NaN as a NumPy float
            _empty(column, row, None, problems)
            return None
    else:
        detail = f"expected text or a number, found {show(value)}"
        problems.add(row, column.name, "wrong_type", detail, value)
        return None
    if known is not None and text not in known:
        listed = sorted(known)
        shown = ", ".join(map(repr, listed[:10])) or "none"
        shown += f", ... ({len(listed)} in all)" if len(listed) > 10 else ""
        detail = f"{show(text)} was never seen in training; known: {shown}"
        problems.add(row, column.name, "unseen_category", detail, text)
    return text


def _datetime(column: InputColumn, row: int, value: Any, problems: Problems) -> int:
    """Microseconds since 1970 (NaT's integer when missing or wrong)."""
    if value is None or value is ABSENT or (isinstance(value, float) and value != value):
        _empty(column, row, None if isinstance(value, float) else value, problems)
        return _NAT
    reason = ""
    parsed: datetime | None = None
    if isinstance(value, datetime):  # the pandas front's Timestamps
        parsed = value
    elif isinstance(value, str):
        value = str(value)
        if not is_valid_text(value):
            return _invalid_text(column, row, value, problems)  # type: ignore[no-any-return]
        try:
            if len(value) > _LONGEST_DATE:
                raise ValueError(value[:40])
            parsed = datetime.fromisoformat(value)
        except ValueError:
            reason = " (not ISO-8601)"
    if parsed is not None:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        if _EARLIEST <= parsed <= _LATEST:
            return (parsed - _EPOCH) // _MICROSECOND
        reason = " (outside the years 1678 to 2261)"
    problems.add(
        row, column.name, "wrong_type", f"expected {_ISO}, found {show(value)}{reason}", value
    )
    return _NAT


def _float_array(column: InputColumn, numbers: np.ndarray, problems: Problems) -> np.ndarray:
    """A float64 column (NaN missing): infinities and disallowed nulls are reported."""
    finite = np.isfinite(numbers)
    if finite.all():
        return numbers
    for row in np.flatnonzero(~finite).tolist():
        value = float(numbers[row])
        if math.isnan(value):
            _empty(column, row, None, problems)
        else:
            detail = f"expected a finite 64-bit number, found {value!r}"
            problems.add(row, column.name, "wrong_type", detail, value)
    return numbers


_NUMBER_TYPES = frozenset({int, float})


def decode_value(
    column: InputColumn, row: int, value: Any, problems: Problems, reject: bool
) -> Any:
    """One value of ``column`` at ``row`` checked by the column's rule: what
    :func:`decode_column` does value by value (a float, a category text or ``None``,
    or a date's microseconds since 1970), reporting its problem, if any."""
    if column.kind == "numeric":
        return _number(column, row, value, problems)
    if column.kind == "categorical":
        return _category(column, row, value, problems, column.categories if reject else None)
    return _datetime(column, row, value, problems)


def decode_column(
    column: InputColumn, values: Sequence[Any] | np.ndarray, problems: Problems, reject: bool
) -> Sequence[Any] | np.ndarray:
    """One column's checked values (a list, or an array when the column is large).

    Numbers come back as floats (NaN for missing), categories as ``str`` or ``None``,
    dates as a ``datetime64[ns]`` array; the vectorised path only when every value fits.
    A float64 array (the pandas front's number columns) is checked as a whole.
    """
    if isinstance(values, np.ndarray):
        if column.kind == "numeric":
            return _float_array(column, values, problems)
        return decode_column(column, values.tolist(), problems, reject)
    large = len(values) > SMALL
    allowed = {_NONE} if column.nullable else set()
    if column.kind == "numeric":
        if large and set(map(type, values)) <= allowed | _NUMBER_TYPES:
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
        known = column.categories if reject else None
        if large:
            fast = _large_categories(column, values, allowed, known)
            if fast is not None:
                return fast
        return [_category(column, row, value, problems, known) for row, value in enumerate(values)]
    # Integers, not datetime objects: NumPy converts those ten times slower.
    ticks = [_datetime(column, row, value, problems) for row, value in enumerate(values)]
    return np.array(ticks, dtype=np.int64).view("datetime64[us]").astype("datetime64[ns]")


def _large_categories(
    column: InputColumn, values: Sequence[Any], allowed: set[type], known: frozenset[str] | None
) -> Sequence[Any] | None:
    """A large categorical column checked whole, or None when a value needs a look."""
    types = set(map(type, values))
    if types <= allowed | {str}:
        texts: Sequence[Any] = values
        strings = values if _NONE not in types else [value for value in values if value is not None]
        if strings and (
            max(map(len, strings)) > column.max_length or not is_valid_text("".join(strings))
        ):
            return None
    elif types <= allowed | _NUMBER_TYPES and column.recorded != "boolean":
        texts = category_texts(np.array(values, dtype=object)).tolist()
        if not column.nullable and None in texts:  # NaN: a missing value
            return None
    else:
        return None
    if known is not None and not set(texts) - {None} <= known:
        return None
    return texts


def to_block(parts: list[Sequence[Any] | np.ndarray], dtype: np.dtype, rows: int) -> np.ndarray:
    """Checked columns of one kind as one C-contiguous ``[rows, len(parts)]`` block."""
    if not parts:
        return np.empty((rows, 0), dtype=dtype)
    if rows > SMALL:
        return np.stack([np.asarray(part, dtype=dtype) for part in parts], axis=1)
    by_column = np.array(parts, dtype=dtype)  # [columns, rows]: one call for every value
    if by_column.shape != (len(parts), rows):  # an object cell holding a sequence, say
        by_column = np.empty((len(parts), rows), dtype=dtype)
        for index, part in enumerate(parts):
            by_column[index, :] = part
    return np.ascontiguousarray(by_column.T)


def decode_inputs(
    contract: InputContract,
    present: Collection[str],
    decode: Callable[[InputColumn], Sequence[Any] | np.ndarray],
    problems: Problems,
    rows: int,
) -> ColumnBlocks | None:
    """Every input of ``contract`` decoded by ``decode`` (a front's reading of one
    column), as blocks whose ranges and ratios are checked; None when an input is not
    in ``present`` (each such is a ``missing_column`` problem). Never raises for a
    row's problem: they are all in ``problems``."""
    parts: dict[str, list[Sequence[Any] | np.ndarray]] = {kind: [] for kind in KINDS}
    complete = True
    for column in contract.columns:
        if column.name not in present:
            problems.add(None, column.name, "missing_column", "missing")
            complete = False
        else:
            parts[column.kind].append(decode(column))
    if not complete:
        return None
    blocks = tuple(
        to_block(parts[kind], dtype, rows) for kind, dtype in zip(KINDS, _DTYPES, strict=True)
    )
    check_ranges(contract, blocks[0], problems)
    return ColumnBlocks(contract.layout, blocks, rows)  # type: ignore[arg-type]


def check_ranges(contract: InputContract, numeric: np.ndarray, problems: Problems) -> None:
    """Report each number outside its training range, when the contract refuses them,
    and each row whose derived ratio overflows (whatever the range rule)."""
    if contract.ratios:
        check_ratios(contract, numeric, problems)
    if contract.ranges != "refuse":
        return
    outside = contract.out_of_range(numeric)
    if outside is None:
        return
    bounds = contract.bounds
    assert bounds is not None
    names = contract.layout.names[0]
    rows, positions = np.nonzero(outside)
    for row, position in zip(rows.tolist(), positions.tolist(), strict=True):
        value = float(numeric[row, position])
        low, high = float(bounds[0][position]), float(bounds[1][position])
        detail = f"{value:g} is outside the training range [{low:g}, {high:g}]"
        problems.add(row, names[position], "out_of_range", detail, value)


def check_ratios(contract: InputContract, numeric: np.ndarray, problems: Problems) -> None:
    """Report each row whose ratio feature is not finite though both its inputs are.

    This mirrors ``features.transformers.Ratio`` (missing where the denominator is 0 or
    missing), which the contract cannot import: a lower layer. Only the overflow is
    checked here; the division itself stays the pipeline's.
    """
    positions = contract.ratio_positions
    if numeric.size == 0 or not positions:
        return
    # Every ratio at once (one set of array operations per request, not one per ratio:
    # this runs on every prediction, and most requests are one row).
    tops_at, bottoms_at = contract.ratio_columns
    bottom = numeric[:, bottoms_at]
    # A finite top over a bottom of magnitude 1 or more is never further from 0 than the
    # top, so only a bottom under 1 can overflow: most requests stop here, before the
    # division and its error-state switch, the costliest steps.
    if not (np.abs(bottom) < 1.0).any():
        return
    top = numeric[:, tops_at]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        quotient = top / np.where(bottom == 0, 1.0, bottom)
    bad = np.isfinite(top) & np.isfinite(bottom) & (bottom != 0) & ~np.isfinite(quotient)
    if not bad.any():
        return
    which, rows = np.nonzero(bad.T)  # by ratio, then by row: the order problems are told
    for at, row in zip(which.tolist(), rows.tolist(), strict=True):
        ratio = positions[at][0]
        value = float(bottom[row, at])
        detail = (
            f"{value:g} makes the derived feature {ratio.name!r} "
            f"({ratio.numerator} / {ratio.denominator} = {float(top[row, at]):g} / {value:g}) "
            "overflow to infinity; send a number further from 0 (or null if unknown)"
        )
        problems.add(row, ratio.denominator, "non_finite_feature", detail, value)
