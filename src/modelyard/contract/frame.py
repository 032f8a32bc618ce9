"""The contract's pandas front: a DataFrame's columns checked by the JSON front's rules.

Each frame column is handed to the same per-column core as a request's column
(:func:`modelyard.contract.values.decode_column`): number columns as one float64 array
(what a column of JSON numbers becomes), every other column as the Python values it
holds, with NumPy scalars made plain and pandas' missing markers made ``None``. So a
frame and a JSON request holding the same values give the same accepted rows, the same
problems and the same category texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
)

from modelyard.contract.model import InputColumn, InputContract
from modelyard.contract.problems import Problems
from modelyard.contract.values import decode_column, decode_inputs
from modelyard.types import ColumnBlocks

__all__ = ["check_frame_columns", "decode_frame", "frame_values"]

_MISSING_TYPES = (np.generic, type(pd.NA), type(pd.NaT))


def frame_values(series: pd.Series[Any], column: InputColumn) -> np.ndarray | list[Any]:
    """A frame column as the contract's core takes it (see the module docstring)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
        dtype = series.dtype
    numbers = (is_float_dtype(dtype) or is_integer_dtype(dtype)) and not is_bool_dtype(dtype)
    if column.kind == "numeric" and numbers:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if is_datetime64_any_dtype(dtype) and getattr(dtype, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    values = series.to_numpy(dtype=object).tolist()
    types = set(map(type, values))
    if any(issubclass(kind, _MISSING_TYPES) for kind in types):
        values = [_plain(value) for value in values]
    return values


def _plain(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_frame_columns(
    frame: pd.DataFrame, contract: InputContract
) -> tuple[ColumnBlocks | None, Problems]:
    """Check every input of ``contract`` in ``frame``; never raises.

    Returns:
        The decoded columns (None when an input is missing from ``frame``) and every
        problem found (missing inputs included), grouped in ``Problems.groups``.
    """
    problems = Problems()

    def decode(column: InputColumn) -> Sequence[Any] | np.ndarray:
        values = frame_values(frame[column.name], column)
        return decode_column(column, values, problems, contract.reject_unseen)

    present = {str(name) for name in frame.columns}
    return decode_inputs(contract, present, decode, problems, len(frame)), problems


def decode_frame(frame: pd.DataFrame, contract: InputContract) -> tuple[ColumnBlocks, int]:
    """A frame's inputs decoded as a request's would be.

    Raises:
        RequestValidationError: every problem found (the first 50 listed).
    """
    blocks, problems = check_frame_columns(frame, contract)
    problems.check()
    assert blocks is not None  # a missing input is a problem
    return blocks, blocks.rows
