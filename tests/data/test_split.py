"""Random, time and group splits: deterministic, leak-free, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.data.split import split_rows
from modelyard.errors import DataError
from modelyard.spec import SplitSpec


def split(**options: object) -> SplitSpec:
    return SplitSpec.model_validate(options)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = 200
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "label": rng.choice(["a", "b", "c"], size=rows, p=[0.6, 0.3, 0.1]),
            "price": rng.normal(100, 10, size=rows),
            "day": rng.choice(pd.date_range("2024-01-01", periods=20).strftime("%Y-%m-%d"), rows),
            "year": rng.integers(2000, 2010, size=rows),
            "store": rng.choice([f"s{i}" for i in range(15)], size=rows),
        }
    )


def run(frame: pd.DataFrame, spec: SplitSpec, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    options: dict[str, object] = {"target": "label", "task": "multiclass", "seed": 42}
    options["timestamp_column"] = None
    options.update(kwargs)
    return split_rows(frame, spec, **options)  # type: ignore[arg-type]


def check_partition(frame: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> None:
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert (np.diff(train) > 0).all() and (np.diff(test) > 0).all()
    assert np.intersect1d(train, test).size == 0
    assert len(train) + len(test) == len(frame)


# -- random -----------------------------------------------------------------------------


def test_random_is_deterministic_and_seeded(frame: pd.DataFrame) -> None:
    train, test = run(frame, split())
    check_partition(frame, train, test)
    assert len(test) == 40
    again_train, again_test = run(frame, split())
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    _, other = run(frame, split(), seed=7)
    assert not np.array_equal(test, other)


def test_random_stratifies_classification(frame: pd.DataFrame) -> None:
    _, test = run(frame, split(test_size=0.25))
    shares = frame["label"].iloc[test].value_counts(normalize=True)
    overall = frame["label"].value_counts(normalize=True)
    assert (shares - overall).abs().max() < 0.02


def test_regression_ignores_stratify(frame: pd.DataFrame) -> None:
    train, test = run(frame, split(), target="price", task="regression")
    check_partition(frame, train, test)


def test_single_row_class_cannot_be_stratified(frame: pd.DataFrame) -> None:
    lone = frame.assign(label=["z"] + frame["label"].iloc[1:].tolist())
    with pytest.raises(DataError, match=r"class\(es\) 'z' of target 'label' have a single row"):
        run(lone, split())
    train, test = run(lone, split(stratify=False))
    check_partition(lone, train, test)


def test_too_few_evaluation_rows_to_stratify() -> None:
    small = pd.DataFrame({"label": ["a", "b", "c"] * 4, "x": range(12)})
    with pytest.raises(DataError, match=r"cannot stratify the split .*raise split\.test_size"):
        run(small, split(test_size=0.1))


def test_stratify_needs_a_complete_target(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="has missing values"):
        run(frame.assign(label=[None] + frame["label"].iloc[1:].tolist()), split())
    with pytest.raises(DataError, match="the target .* 'y' is not a column"):
        run(frame, split(), target="y")


def test_numeric_labels_stratify(frame: pd.DataFrame) -> None:
    coded = frame.assign(label=frame["label"].map({"a": 0, "b": 1, "c": 2}))
    _, test = run(coded, split())
    _, by_text = run(frame, split())
    assert np.array_equal(test, by_text)


def test_too_few_rows() -> None:
    with pytest.raises(DataError, match=r"cannot split 1 row\(s\)"):
        run(pd.DataFrame({"label": ["a"]}), split())


# -- time -------------------------------------------------------------------------------


def test_time_from_date(frame: pd.DataFrame) -> None:
    train, test = run(frame, split(method="time", column="day", test_from="2024-01-17"))
    check_partition(frame, train, test)
    assert (frame["day"].iloc[test] >= "2024-01-17").all()
    assert (frame["day"].iloc[train] < "2024-01-17").all()


def test_time_defaults_to_timestamp_column(frame: pd.DataFrame) -> None:
    _, test = run(frame, split(method="time", test_from=2008), timestamp_column="year")
    assert set(frame["year"].iloc[test]) == {2008, 2009}


def test_time_latest_share_keeps_ties_together(frame: pd.DataFrame) -> None:
    train, test = run(frame, split(method="time", test_size=0.2), timestamp_column="day")
    check_partition(frame, train, test)
    assert frame["day"].iloc[train].max() < frame["day"].iloc[test].min()
    assert abs(len(test) - 40) <= frame["day"].value_counts().max()


def test_time_share_on_datetimes_with_a_heavy_last_day() -> None:
    days = pd.to_datetime(["2024-01-01"] * 6 + ["2024-01-02"] * 2 + ["2024-01-03"] * 2)
    rows = pd.DataFrame({"t": days, "label": ["a", "b"] * 5})
    _, test = run(rows, split(method="time", test_size=0.25), timestamp_column="t")
    assert test.tolist() == [8, 9]  # 2 rows are closer to 25% of 10 than 4 rows
    _, test = run(rows, split(method="time", test_size=0.4), timestamp_column="t")
    assert test.tolist() == [6, 7, 8, 9]


def test_time_on_tz_aware_column() -> None:
    days = pd.date_range("2024-01-01", periods=10, tz="Europe/Paris")
    rows = pd.DataFrame({"t": days[::-1]})
    _, test = run(rows, split(method="time", test_size=0.2), timestamp_column="t")
    assert test.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("test_from", "message"),
    [
        ("2030-01-01", r"no evaluation rows; move split\.test_from earlier"),
        ("2000-01-01", r"no training rows; move split\.test_from later"),
    ],
)
def test_time_empty_side(frame: pd.DataFrame, test_from: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        run(frame, split(method="time", column="day", test_from=test_from))


def test_time_needs_times(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"needs split\.column or data\.timestamp_column"):
        run(frame, split(method="time"))
    with pytest.raises(DataError, match=r"the time split column 'when' is not a column"):
        run(frame, split(method="time", column="when"))
    gaps = frame.assign(day=[None] + frame["day"].iloc[1:].tolist())
    with pytest.raises(DataError, match=r"'day' has 1 missing values \(rows 0\)"):
        run(gaps, split(method="time", column="day"))
    with pytest.raises(DataError, match="holds a single time"):
        run(frame.assign(day="2024-01-01"), split(method="time", column="day"))
    with pytest.raises(DataError, match="holds values that are not dates"):
        run(frame, split(method="time", column="store", test_from="2024-01-01"))


# -- group ------------------------------------------------------------------------------


def test_group_split_has_no_leaks(frame: pd.DataFrame) -> None:
    train, test = run(frame, split(method="group", column="store"))
    check_partition(frame, train, test)
    assert not set(frame["store"].iloc[train]) & set(frame["store"].iloc[test])
    again = run(frame, split(method="group", column="store"))
    assert np.array_equal(test, again[1])
    _, other = run(frame, split(method="group", column="store"), seed=1)
    assert not np.array_equal(test, other)


def test_group_split_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="holds a single group"):
        run(frame.assign(store="s1"), split(method="group", column="store"))
    with pytest.raises(DataError, match=r"'store' has 1 missing values"):
        run(
            frame.assign(store=[None] + frame["store"].iloc[1:].tolist()),
            split(method="group", column="store"),
        )
    with pytest.raises(DataError, match="the group split column 'shop' is not a column"):
        run(frame, split(method="group", column="shop"))
