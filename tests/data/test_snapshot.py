"""Content digests and Parquet snapshots of training frames."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from _projects import AMES_CSV
from modelyard.data.snapshot import frame_digest, frame_from_parquet, frame_to_parquet
from modelyard.errors import DataError


@pytest.fixture
def mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "price": [1.5, np.nan, -0.25, 1e300],
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "name": pd.Series(["a", None, "ç€", ""], dtype="str"),
            "flag": [True, False, True, False],
            "maybe": pd.Series([True, None, False, True], dtype=object),
            "when": pd.to_datetime(
                ["2024-01-01", None, "2024-03-01 12:30:00.000001", "1900-01-01"], format="ISO8601"
            ),
            "zoned": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"]).tz_localize(
                "Europe/Paris"
            ),
            "level": pd.Categorical(["lo", "hi", None, "lo"]),
            "mixed": pd.Series([1, "x", None, 2.5], dtype=object),
            "day": pd.Series([pd.Timestamp("2024-01-01").date(), None, None, None], dtype=object),
        }
    )


def test_round_trip_keeps_the_digest(mixed: pd.DataFrame) -> None:
    data = frame_to_parquet(mixed)
    assert data[:4] == b"PAR1"
    back = frame_from_parquet(data)
    assert frame_digest(back) == frame_digest(mixed)
    assert back.columns.tolist() == mixed.columns.tolist()
    assert back["name"].isna().tolist() == [False, True, False, False]
    assert back["when"].iloc[2] == mixed["when"].iloc[2]
    assert frame_digest(frame_from_parquet(frame_to_parquet(back))) == frame_digest(mixed)


def test_round_trip_of_a_read_csv_frame_is_exact(tmp_path: object) -> None:
    frame = pd.read_csv(AMES_CSV, nrows=300)
    back = frame_from_parquet(frame_to_parquet(frame))
    pd.testing.assert_frame_equal(back, frame)


def test_object_and_str_dtypes_agree() -> None:
    values = ["a", None, "b", "ccc"]
    as_object = pd.DataFrame({"s": pd.Series(values, dtype=object)})
    as_str = pd.DataFrame({"s": pd.Series(values, dtype="str")})
    as_string = pd.DataFrame({"s": pd.Series(values, dtype="string")})
    as_category = pd.DataFrame({"s": pd.Categorical(values)})
    digests = {frame_digest(f) for f in (as_object, as_str, as_string, as_category)}
    assert len(digests) == 1


def test_storage_dtypes_do_not_matter() -> None:
    base = pd.DataFrame({"i": [1, 2, 3], "f": [0.5, 1.0, np.nan], "b": [True, False, True]})
    narrow = base.astype({"i": "int8", "f": "float32", "b": "boolean"})
    nullable = base.astype({"i": "Int64", "f": "Float64"})
    objects = base.astype(object)
    assert frame_digest(narrow) == frame_digest(base)
    assert frame_digest(nullable) == frame_digest(base)
    assert frame_digest(objects) == frame_digest(base)
    assert frame_digest(base.set_index(pd.Index([7, 8, 9]))) == frame_digest(base)
    with_none = base.astype({"f": object})
    with_none.loc[2, "f"] = None
    assert frame_digest(with_none) == frame_digest(base)


def test_datetime_units_agree() -> None:
    times = pd.to_datetime(["2024-01-01 10:00", None, "1999-12-31"], format="ISO8601")
    assert frame_digest(pd.DataFrame({"t": times.as_unit("s")})) == frame_digest(
        pd.DataFrame({"t": times.as_unit("ns")})
    )
    assert frame_digest(pd.DataFrame({"t": times})) != frame_digest(
        pd.DataFrame({"t": times.tz_localize("UTC")})
    )


def test_out_of_nanosecond_range_datetimes() -> None:
    frame = pd.DataFrame(
        {"t": pd.Series(pd.to_datetime(["2024-01-01", "3000-01-01"]).as_unit("s"))}
    )
    back = frame_from_parquet(frame_to_parquet(frame))
    assert frame_digest(back) == frame_digest(frame)
    assert frame_digest(frame.assign(t=frame["t"].dt.as_unit("us"))) == frame_digest(frame)


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.iloc[::-1].reset_index(drop=True),
        lambda f: f.rename(columns={"a": "A"}),
        lambda f: f[["b", "a"]],
        lambda f: f.assign(a=[1, 2, 4]),
        lambda f: f.assign(a=[1.0, 2.0, 3.0]),
        lambda f: f.assign(b=["x", None, "z"]),
        lambda f: f.assign(b=["x", "", "z"]),
        lambda f: f.assign(b=["xy", "", "z"]),
        lambda f: f.assign(a=["1", "2", "3"]),
        lambda f: f.iloc[:2],
    ],
    ids=["rows", "rename", "columns", "value", "kind", "null", "empty", "boundary", "text", "drop"],
)
def test_content_changes_change_the_digest(change: object) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert frame_digest(change(frame)) != frame_digest(frame)  # type: ignore[operator]


def test_digest_is_pinned() -> None:
    # A change here breaks every recorded snapshot digest: only on purpose, with a
    # new format version in the header.
    frame = pd.DataFrame(
        {
            "i": [1, 2],
            "f": [0.5, None],
            "s": ["a", None],
            "b": [True, False],
            "t": pd.to_datetime(["2024-01-01", None]),
        }
    )
    assert frame_digest(frame) == PINNED


PINNED = "ef505290e720b2d20f50cf68f5d6d000b2f0d22d173f8f4af6c0a62f42d4086b"


def test_duplicate_column_names() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match=r"columns \['a'\] appear more than once"):
        frame_digest(frame)
    with pytest.raises(DataError, match="appear more than once"):
        frame_to_parquet(frame)


def test_too_large_unsigned_integers() -> None:
    frame = pd.DataFrame({"u": np.array([1, 2**63 + 5], dtype=np.uint64)})
    with pytest.raises(DataError, match=r"column 'u' holds integers above"):
        frame_digest(frame)


def test_damaged_snapshot_bytes() -> None:
    with pytest.raises(DataError, match="snapshot is not a readable Parquet file"):
        frame_from_parquet(b"not parquet at all")


def test_empty_frames() -> None:
    empty = pd.DataFrame({"a": pd.Series([], dtype="int64"), "s": pd.Series([], dtype="str")})
    assert frame_digest(frame_from_parquet(frame_to_parquet(empty))) == frame_digest(empty)
    assert frame_digest(empty) != frame_digest(pd.DataFrame())


def test_digest_is_fast() -> None:
    rng = np.random.default_rng(0)
    rows = 200_000
    columns: dict[str, object] = {f"f{i}": rng.normal(size=rows) for i in range(12)}
    columns.update({f"i{i}": rng.integers(0, 100, size=rows) for i in range(4)})
    words = np.array(["north", "south", "east", "west"], dtype=object)
    columns.update(
        {f"s{i}": pd.Series(words[rng.integers(0, 4, rows)], dtype="str") for i in range(4)}
    )
    frame = pd.DataFrame(columns)
    start = time.perf_counter()
    frame_digest(frame)
    assert time.perf_counter() - start < 2.0  # 4M cells; 1M x 80 takes about 1 s


@pytest.mark.slow
def test_digest_of_a_million_rows_by_80_columns() -> None:
    rng = np.random.default_rng(1)
    rows = 1_000_000
    columns: dict[str, object] = {f"f{i}": rng.normal(size=rows) for i in range(64)}
    columns.update({f"i{i}": rng.integers(0, 1000, size=rows) for i in range(10)})
    words = np.array(["alpha", "beta", "gamma", "delta"], dtype=object)
    columns.update(
        {f"s{i}": pd.Series(words[rng.integers(0, 4, rows)], dtype="str") for i in range(6)}
    )
    frame = pd.DataFrame(columns)
    start = time.perf_counter()
    frame_digest(frame)
    assert time.perf_counter() - start < 6.0
