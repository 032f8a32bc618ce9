"""Reading a source *as of* a point in time: comparable timestamps, dates, years."""

from __future__ import annotations

import datetime as dt
import logging
import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from modelyard.errors import DataError

logger = logging.getLogger(__name__)


def _filter_as_of(
    frame: pd.DataFrame, column: str | None, as_of: object, where: str
) -> pd.DataFrame:
    if column is None:
        raise DataError(f"{where}: reading as of {as_of!r} needs data.timestamp_column")
    try:
        values, cutoff = comparable_times(frame[column], as_of, what="as_of")
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    keep = (values <= cutoff).to_numpy(dtype=bool, na_value=False)
    if not keep.any():
        earliest = values.min()
        raise DataError(
            f"{where}: no rows on or before as_of {as_of!r} in column {column!r} "
            f"(the earliest is {earliest}); choose a later as_of"
        )
    dropped = int(len(frame) - keep.sum())
    logger.debug("%s: as_of %r keeps %d rows, drops %d", where, as_of, keep.sum(), dropped)
    kept: pd.DataFrame = frame.loc[keep].reset_index(drop=True)
    return kept


def comparable_times(
    values: pd.Series, bound: object = None, *, what: str
) -> tuple[pd.Series, Any]:
    """``values`` and ``bound`` in forms that compare as times (shared with the time split).

    Datetime columns compare with ``bound`` as a timestamp; numeric columns (e.g. a year)
    compare numerically; text columns are parsed as datetimes (or as numbers when
    ``bound`` is a number). ``what`` names ``bound`` in messages (e.g. ``as_of``).
    """
    column = values.name
    if is_bool_dtype(values):
        raise DataError(f"column {column!r} holds booleans, not times; it cannot bound {what}")
    bound_is_number = isinstance(bound, numbers.Real) and not isinstance(bound, bool | np.bool_)
    if is_numeric_dtype(values) or (bound_is_number and not is_datetime64_any_dtype(values)):
        as_numbers = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & as_numbers.isna()
        if bad.any():
            if _try_times(values) is not None:
                raise _not_a_date(what, bound, column)
            raise DataError(
                f"column {column!r} holds values that are not numbers (e.g. "
                f"{values[bad].iloc[0]!r}), so {what} {bound!r} cannot be compared with it"
            )
        if bound is None or bound_is_number:
            return as_numbers, bound
        try:
            return as_numbers, float(str(bound))
        except ValueError:
            raise DataError(
                f"{what} {bound!r} is not a number, but column {column!r} holds numbers "
                f"(e.g. {as_numbers.dropna().iloc[0]!r}); give {what} as a number"
            ) from None
    times = values if is_datetime64_any_dtype(values) else _parse_times(values, what)
    if bound is None:
        return times, None
    if bound_is_number or not isinstance(bound, str | dt.date):
        raise _not_a_date(what, bound, column)
    try:
        cutoff = pd.Timestamp(bound)
    except ValueError:
        raise DataError(f"{what} {bound!r} is not a date; write it like '2024-01-31'") from None
    zone = getattr(times.dtype, "tz", None)
    if zone is not None and cutoff.tzinfo is None:
        cutoff = cutoff.tz_localize(zone)
    elif zone is None and cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert(None)
    return times, cutoff


def _not_a_date(what: str, bound: object, column: object) -> DataError:
    return DataError(
        f"{what} {bound!r} is not a date, but column {column!r} holds dates; "
        f"give {what} as a date like '2024-01-31'"
    )


def _try_times(values: pd.Series) -> pd.Series | None:
    """``values`` parsed as datetimes, or ``None`` if some value is not a date."""
    attempts: list[dict[str, Any]] = [{}, {"format": "mixed"}, {"format": "mixed", "utc": True}]
    for options in attempts:  # one inferred format is fast; value by value is the fallback
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
                parsed: pd.Series = pd.to_datetime(values, **options)
        except (ValueError, TypeError, OverflowError):
            continue
        return parsed
    return None


def _parse_times(values: pd.Series, what: str) -> pd.Series:
    parsed = _try_times(values)
    if parsed is not None:
        return parsed
    coerced = pd.to_datetime(values, format="mixed", errors="coerce", utc=True)
    bad = values.notna() & coerced.isna()
    example = values[bad].iloc[0] if bad.any() else None
    raise DataError(
        f"column {values.name!r} holds values that are not dates (e.g. {example!r}), "
        f"so it cannot be compared with {what}; clean the column or pick another"
    )
