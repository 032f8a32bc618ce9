"""Content-addressed snapshots of the rows a model was trained on.

:func:`frame_digest` is the sha256 of a frame's *canonical content*: the column names
in order, one canonical kind per column and the values, row by row. It does not hash
Parquet bytes, whose layout changes between library versions, and it does not depend
on how pandas happens to store a column:

- ``int``: any integer dtype, or object columns of Python ints, as little-endian int64;
  an integer column with missing values is a ``float`` column (as pandas reads it);
- ``float``: any float dtype as float64; NaN and None are both missing;
- ``bool``: numpy, nullable or object booleans;
- ``string``: ``object``, ``str`` and ``string`` dtypes alike, as UTF-8; values of mixed
  types in an object column are written with ``str()``;
- ``datetime``: instants as int64 nanoseconds (microseconds if a value falls outside
  the nanosecond range); tz-aware columns record their zone in the kind;
- categorical columns take the kind of their categories.

The index is not content. Missing values are recorded in a validity mask, so the value
stored under a missing slot does not matter. :func:`frame_to_parquet` writes the same
canonical columns, so ``frame_digest(frame_from_parquet(frame_to_parquet(df)))``
equals ``frame_digest(df)``.

Example:
    >>> a = pd.DataFrame({"x": [1, 2], "s": pd.Series(["a", None], dtype=object)})
    >>> b = pd.DataFrame({"x": [1, 2], "s": pd.Series(["a", None], dtype="str")})
    >>> frame_digest(a) == frame_digest(b) == frame_digest(frame_from_parquet(frame_to_parquet(a)))
    True
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.types import (
    is_datetime64_any_dtype,
    is_float_dtype,
    is_unsigned_integer_dtype,
)

from modelyard.data.schema import column_kind
from modelyard.errors import DataError

__all__ = ["frame_digest", "frame_from_parquet", "frame_to_parquet"]

_FORMAT = "modelyard-frame/1"
_INT64_MAX = np.iinfo(np.int64).max


def frame_digest(df: pd.DataFrame) -> str:
    """sha256 hex digest of the canonical content of ``df`` (see the module docs).

    Row order and column names count; the index and storage dtypes do not.

    Raises:
        DataError: two columns share a name, or integers exceed the int64 range.
    """
    columns = _canonical_columns(df)
    header = {
        "format": _FORMAT,
        "rows": len(df),
        "columns": [[name, kind] for name, kind, _ in columns],
    }
    digest = hashlib.sha256(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    for _, kind, array in columns:
        nulls = array.is_null().to_numpy(zero_copy_only=False)
        digest.update(np.packbits(nulls).data)
        if kind == "string":
            _hash_strings(digest, array)
            continue
        if kind == "bool":
            values = pc.fill_null(array, False).to_numpy(zero_copy_only=False).view(np.uint8)
        elif kind.startswith("datetime"):
            unit = _timestamp_unit(array)
            digest.update(unit.encode("ascii"))
            instants = array.cast(pa.timestamp(unit, array.type.tz)).cast(pa.int64())
            values = pc.fill_null(instants, 0).to_numpy().astype("<i8", copy=False)
        else:
            dtype = "<i8" if kind == "int" else "<f8"
            filled = pc.fill_null(array, 0) if array.null_count else array
            values = filled.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        digest.update(np.ascontiguousarray(values).data)
    return digest.hexdigest()


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    """The canonical columns of ``df`` as Parquet bytes (zstd), index left out.

    Raises:
        DataError: two columns share a name, or integers exceed the int64 range.
    """
    columns = _canonical_columns(df)
    table = pa.Table.from_arrays(
        [array for _, _, array in columns], names=[name for name, _, _ in columns]
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data: bytes = sink.getvalue().to_pybytes()
    return data


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    """Read Parquet bytes written by :func:`frame_to_parquet` back into a frame.

    Raises:
        DataError: the bytes are not a readable Parquet file.
    """
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"snapshot is not a readable Parquet file ({exc}); the stored bytes may be damaged"
        ) from None
    frame: pd.DataFrame = table.to_pandas()
    return frame


# -- canonical columns ----------------------------------------------------------------


def _canonical_columns(df: pd.DataFrame) -> list[tuple[str, str, pa.Array]]:
    names = [str(name) for name in df.columns]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataError(f"columns {repeated} appear more than once; give each column its own name")
    return [
        (name, *_canonical_column(df.iloc[:, position], name))
        for position, name in enumerate(names)
    ]


def _canonical_column(values: pd.Series, name: str) -> tuple[str, pa.Array]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    kind = column_kind(values)
    if kind == "integer":
        if values.hasnans:
            kind = "float"
        else:
            return "int", _int_array(values, name)
    if kind == "float":
        if not is_float_dtype(values.dtype):
            values = pd.to_numeric(values)
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return "float", pa.array(numbers, from_pandas=True)
    if kind == "boolean":
        nulls = values.isna().to_numpy(dtype=bool)
        flags = np.zeros(len(values), dtype=bool)
        flags[~nulls] = values[~nulls].astype(bool).to_numpy()
        return "bool", pa.array(flags, mask=nulls, type=pa.bool_())
    if kind == "datetime":
        times = values if is_datetime64_any_dtype(values.dtype) else _to_datetimes(values)
        if times is not None:
            array = _single_array(pa.array(times, from_pandas=True))
            zone = array.type.tz
            return ("datetime" if zone is None else f"datetime[{zone}]"), array
    return "string", _string_array(values)


def _int_array(values: pd.Series, name: str) -> pa.Array:
    if is_unsigned_integer_dtype(values.dtype) and len(values) and values.max() > _INT64_MAX:
        raise DataError(f"column {name!r} holds integers above {_INT64_MAX}, the int64 limit")
    try:
        return pa.array(values.to_numpy(dtype=np.int64))
    except OverflowError:
        raise DataError(f"column {name!r} holds integers outside the int64 range") from None


def _to_datetimes(values: pd.Series) -> pd.Series | None:
    try:
        return pd.to_datetime(values)
    except (ValueError, TypeError, OverflowError):
        return None  # e.g. mixed time zones: kept as text


def _string_array(values: pd.Series) -> pa.Array:
    try:
        array = pa.array(values, from_pandas=True)
        if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            raise pa.ArrowTypeError("not text")
    except (pa.ArrowException, TypeError, ValueError):
        text = values.map(str, na_action="ignore").astype(object)
        array = pa.array(text, from_pandas=True, type=pa.large_string())
    return _single_array(array.cast(pa.large_string()))


def _single_array(array: Any) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks()
    return array


def _timestamp_unit(array: pa.Array) -> str:
    """``ns`` when every instant fits in int64 nanoseconds, else ``us``."""
    try:
        array.cast(pa.timestamp("ns", array.type.tz))
    except pa.ArrowInvalid:
        return "us"
    return "ns"


def _hash_strings(digest: Any, array: pa.Array) -> None:
    filled = pc.fill_null(array, "")
    lengths = pc.binary_length(filled).to_numpy(zero_copy_only=False).astype("<i8")
    digest.update(lengths.tobytes())
    # The concatenated UTF-8 bytes of the values, read straight from the Arrow buffers.
    offsets_buffer, data_buffer = filled.buffers()[1:3]
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)
    start = int(offsets[filled.offset])
    end = int(offsets[filled.offset + len(filled)])
    if data_buffer is not None and end > start:
        digest.update(memoryview(data_buffer)[start:end])
