"""Checks shared by every source: a fresh index, the required and unique column names."""

from __future__ import annotations

import difflib

import pandas as pd

from modelyard.errors import DataError
from modelyard.spec import DataSpec


def _fresh_index(frame: pd.DataFrame) -> pd.DataFrame:
    # Named index levels (e.g. restored from Parquet) are data: keep them as columns.
    if not isinstance(frame.index, pd.RangeIndex) and all(
        name is not None for name in frame.index.names
    ):
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    frame.columns = [str(name) for name in frame.columns]
    return frame


def _check_columns(frame: pd.DataFrame, data: DataSpec, where: str) -> None:
    names = [str(name) for name in frame.columns]
    _refuse_duplicates(names, where)
    _check_names(names, data, where)


def _refuse_duplicates(names: list[str], where: str) -> None:
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(position)
    repeated = {name: places for name, places in positions.items() if len(places) > 1}
    if repeated:
        listed = "; ".join(
            f"{name!r} at columns {', '.join(map(str, places))}"
            for name, places in repeated.items()
        )
        raise DataError(
            f"{where}: repeated column names ({listed}; counting from 1); rename them so "
            "each column has its own name"
        )


def _check_names(columns: list[str], data: DataSpec, where: str) -> None:
    wanted = [(name, "data.id_columns") for name in data.id_columns]
    if data.timestamp_column is not None:
        wanted.append((data.timestamp_column, "data.timestamp_column"))
    for name, key in wanted:
        if name not in columns:
            raise DataError(
                f"{where}: {key} names {name!r}, which is not a column{_hint(name, columns)}"
            )


def _hint(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=3)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
    return f"; the columns are: {shown}"
