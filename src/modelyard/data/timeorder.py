"""Does a table look ordered in time, or made of entities seen many times?

A random split of time-ordered rows lets the model learn from the future of the rows
it is evaluated on; a random split of a panel (the same store, city or customer on many
rows) puts rows of one entity on both sides. Either flatters the evaluation.
:func:`detect_time_order` finds the evidence; ``init`` turns it into a ``time`` split
(with a ``group`` split as the documented alternative, or as the proposal when an
entity repeats without a time column), and ``train`` warns when a random split is used
on such data.

Evidence, strongest first:

- a date or datetime column (datetime dtype, or text that parses as ISO-like dates)
  with many distinct values;
- a year column (named like ``year``/``yr``, whole numbers 1900-2100), with or without
  a month column (named like ``month``/``mo``, whole numbers 1-12);
- a numeric column named like a timestamp (``time``, ``timestamp``, ``epoch``...) that
  never decreases in file order.

An entity is a column whose values repeat on many rows, named like an id or holding
text, such that (entity, time) pairs are nearly unique: one row per entity and time.

Example:
    >>> months = pd.date_range("2020-01-01", periods=12, freq="MS")
    >>> frame = pd.DataFrame({"city": ["a", "b", "c"] * 12, "month": months.repeat(3),
    ...                       "sales": range(36)})
    >>> found = detect_time_order(frame, target="sales")
    >>> found.column, found.entity
    ('month', 'city')
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

__all__ = ["TimeOrder", "detect_time_order", "looks_like_dates"]

_YEAR_RE = re.compile(r"(^|[^a-z])(year|yr)s?([^a-z]|$)|^(year|yr)", re.IGNORECASE)
_MONTH_RE = re.compile(r"(^|[^a-z])(month|mo|mon)([^a-z]|$)|^month", re.IGNORECASE)
_TIMESTAMP_RE = re.compile(r"(time|timestamp|epoch|^ts$|_ts$|datetime)", re.IGNORECASE)
_ENTITY_NAME_RE = re.compile(
    r"(^id$|[_.\s-]?id$|Id$|ID$|^(store|city|region|shop|customer|user|account|entity|"
    r"site|station|country|state|county|product|item|patient|client|device)s?([_.\s-]|$))",
    re.IGNORECASE,
)
_ID_RE = re.compile(r"(^id$|[_.\s-]id$|[a-z0-9]Id$|ID$)")
_DATE_RE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4}-\d{2})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_MIN_TIMES = 4
_SAMPLE = 2000


@dataclass(frozen=True)
class TimeOrder:
    """Evidence that rows are ordered in time, and the split it calls for.

    Attributes:
        column: the column to split on by time (``None`` when only an entity repeats).
        reason: the evidence, in a sentence.
        entity: a column naming entities seen at many times (a panel), if any.
    """

    column: str | None
    reason: str
    entity: str | None = None


def detect_time_order(
    df: pd.DataFrame, *, target: str, exclude: tuple[str, ...] = ()
) -> TimeOrder | None:
    """Find a time column (and a repeating entity) in ``df``; ``None`` if there is none.

    Args:
        df: the rows, in source order.
        target: the target column, never a time or entity.
        exclude: other columns to ignore (e.g. row-number ids).
    """
    candidates = [c for c in df.columns if c != target and c not in exclude]
    column, reason = _time_column(df, candidates)
    entity = _entity(df, candidates, column)
    if column is None and entity is None:
        return None
    if column is None:
        assert entity is not None
        share = df[entity].nunique() / len(df)
        reason = (
            f"{entity!r} repeats: {df[entity].nunique():,} values on {len(df):,} rows "
            f"({share:.0%}); rows of one {entity} should not be on both sides of the split"
        )
        return TimeOrder(column=None, reason=reason, entity=entity)
    if entity is not None:
        reason += (
            f"; {entity!r} names entities seen at many times (a panel of "
            f"{df[entity].nunique():,} entities)"
        )
    return TimeOrder(column=column, reason=reason, entity=entity)


def looks_like_dates(values: pd.Series) -> bool:
    """Whether a text column holds dates (ISO-like, or day/month/year) throughout."""
    present = values.dropna()
    if present.empty or is_numeric_dtype(present.dtype):
        return False
    sample = present.astype(str).head(_SAMPLE)
    if not sample.map(lambda text: bool(_DATE_RE.match(text))).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def _time_column(df: pd.DataFrame, candidates: list[str]) -> tuple[str | None, str]:
    for column in candidates:
        values = df[column]
        is_dates = is_datetime64_any_dtype(values.dtype) or (
            not is_numeric_dtype(values.dtype) and looks_like_dates(values)
        )
        if is_dates and values.nunique() >= _MIN_TIMES:
            return column, f"{column!r} holds dates ({values.nunique():,} distinct)"
    years = [c for c in candidates if _YEAR_RE.search(str(c)) and _whole_in(df[c], 1900, 2100)]
    years = [c for c in years if df[c].nunique() >= 2]
    months = [c for c in candidates if _MONTH_RE.search(str(c)) and _whole_in(df[c], 1, 12)]
    if years:
        # The year of the observation (Yr.Sold next to Mo.Sold) rather than a year
        # that describes the thing (Year.Built): one paired with a month column by
        # name, else the one spanning the fewest years.
        paired = [
            (year, month)
            for year in years
            for month in months
            if _stem(year, _YEAR_RE) and _stem(year, _YEAR_RE) == _stem(month, _MONTH_RE)
        ]
        year, month = (
            paired[0]
            if paired
            else (
                min(years, key=lambda c: (_span(df, c), years.index(c))),
                months[0] if months else None,
            )
        )
        with_month = f" and {month!r} months" if month else ""
        return year, (
            f"{year!r} holds years ({int(df[year].min())}-{int(df[year].max())})"
            f"{with_month}: the rows are ordered in time"
        )
    for column in candidates:
        values = df[column]
        if not (_TIMESTAMP_RE.search(str(column)) and is_numeric_dtype(values.dtype)):
            continue
        numbers = values.dropna().to_numpy(dtype=float)
        if len(np.unique(numbers)) >= _MIN_TIMES and bool(np.all(np.diff(numbers) >= 0)):
            return column, f"{column!r} is a timestamp that never decreases in file order"
    return None, ""


def _span(df: pd.DataFrame, column: str) -> float:
    present = pd.Series(df[column]).dropna().to_numpy(dtype=float)
    return float(present.max() - present.min())


def _stem(name: str, word: re.Pattern[str]) -> str:
    """``name`` without its year/month word and separators (Yr.Sold -> sold)."""
    return re.sub(r"[^a-z0-9]", "", word.sub(" ", name).lower())


def _whole_in(values: pd.Series, low: int, high: int) -> bool:
    if not is_numeric_dtype(values.dtype) or values.dtype == bool:
        return False
    present = values.dropna().to_numpy(dtype=float)
    if len(present) == 0:
        return False
    whole = bool(np.all(np.equal(np.floor(present), present)))
    return whole and float(present.min()) >= low and float(present.max()) <= high


def _entity(df: pd.DataFrame, candidates: list[str], time_column: str | None) -> str | None:
    rows = len(df)
    for column in candidates:
        if column == time_column:
            continue
        values = df[column]
        named = bool(_ENTITY_NAME_RE.search(str(column)))
        id_named = bool(_ID_RE.search(str(column)))
        textual = not is_numeric_dtype(values.dtype) and not is_datetime64_any_dtype(values.dtype)
        if not (id_named or (time_column is not None and (named or textual))):
            continue
        distinct = values.nunique()
        if distinct < (3 if time_column is not None else 10) or distinct > rows / 2:
            continue
        counts = values.value_counts()
        if float((counts >= 2).mean()) < 0.8:  # most entities must repeat
            continue
        if time_column is None:
            return str(column)
        pairs = df[[column, time_column]].drop_duplicates()
        # A panel: (entity, time) nearly identifies a row, and each entity has many times.
        if len(pairs) >= 0.99 * rows and pairs[column].value_counts().median() >= _MIN_TIMES:
            return str(column)
    return None
