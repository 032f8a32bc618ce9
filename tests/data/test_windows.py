"""Windowed aggregates (``features.windows``): point in time, the same in training and
streaming, and equal to a brute-force computation written independently."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelyard.data.windows import Windows, event_time, window_columns
from modelyard.errors import DataError
from modelyard.spec import ProjectSpec, WindowSpec

WINDOWS = [
    WindowSpec(name="trips_1h", key="driver", agg="count", minutes=60),
    WindowSpec(name="fare_sum_30m", key="driver", agg="sum", over="fare", minutes=30),
    WindowSpec(name="fare_mean_3", key="driver", agg="mean", over="fare", events=3),
    WindowSpec(name="city_count_5", key="city", agg="count", events=5),
]


def _events(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-01T08:00:00")
    minutes = np.sort(rng.integers(0, 240, size=count))  # ties: several events a minute
    fares = rng.gamma(2.0, 8.0, size=count).round(2)
    fares[rng.random(count) < 0.1] = np.nan  # a missing fare counts, adds nothing
    frame = pd.DataFrame(
        {
            "at": start + pd.to_timedelta(minutes, unit="min"),
            "driver": rng.choice(["d1", "d2", "d3", "d4"], size=count),
            "city": rng.choice([1, 2], size=count),
            "fare": fares,
        }
    )
    return frame.sample(frac=1.0, random_state=seed)  # the table is in no particular order


def _brute_force(frame: pd.DataFrame, spec: WindowSpec) -> list[float]:
    """Each row's aggregate from a filter over the whole table (no state, no trimming)."""
    found = []
    ordered = frame.sort_values("at", kind="stable")
    for _, row in frame.iterrows():
        past = ordered[(ordered[spec.key] == row[spec.key]) & (ordered["at"] < row["at"])]
        if spec.minutes is not None:
            past = past[past["at"] >= row["at"] - pd.Timedelta(minutes=spec.minutes)]
        else:
            past = past.tail(spec.events)
        if spec.agg == "count":
            found.append(float(len(past)))
        elif spec.agg == "sum":
            found.append(float(past[spec.over].sum()))
        else:
            values = past[spec.over].dropna()
            found.append(float(values.mean()) if len(values) else math.nan)
    return found


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_training_columns_equal_a_brute_force_computation(seed: int) -> None:
    frame = _events(150, seed)
    columns = window_columns(frame, WINDOWS, "at")
    assert list(columns.index) == list(frame.index)
    for spec in WINDOWS:
        assert columns[spec.name].tolist() == pytest.approx(
            _brute_force(frame, spec), nan_ok=True, rel=1e-12
        ), spec.name


@pytest.mark.parametrize("seed", [4, 5])
def test_the_stream_computation_equals_the_training_one_on_the_same_events(seed: int) -> None:
    frame = _events(300, seed)
    trained = window_columns(frame, WINDOWS, "at")
    # the stream: the same events as JSON rows (ISO text times), one at a time, in time
    # order (events at one instant in the table's order: for "the last N events", which
    # of them count depends on it), through the state a consumer keeps
    ordered = frame.sort_values("at", kind="stable")
    windows = Windows(WINDOWS, "at")
    for index, row in ordered.iterrows():
        message = {
            "at": row["at"].isoformat() + "Z",
            "driver": row["driver"],
            "city": int(row["city"]),
            "fare": None if math.isnan(row["fare"]) else float(row["fare"]),
        }
        online = windows.observe(message)
        for spec in WINDOWS:
            expected = trained.loc[index, spec.name]
            assert online[spec.name] == pytest.approx(expected, nan_ok=True, rel=1e-12), (
                spec.name,
                index,
            )


def test_a_row_never_sees_itself_or_its_instant() -> None:
    frame = pd.DataFrame(
        {"at": ["2026-01-01T10:00:00Z"] * 3 + ["2026-01-01T10:00:01Z"], "driver": ["a"] * 4}
    )
    spec = WindowSpec(name="n", key="driver", agg="count", events=10)
    assert window_columns(frame, [spec], "at")["n"].tolist() == [0.0, 0.0, 0.0, 3.0]


def test_errors_name_the_column_and_the_fix() -> None:
    spec = WindowSpec(name="trips", key="driver", agg="count", minutes=5)
    with pytest.raises(DataError, match="column 'driver' is missing"):
        Windows([spec], "at").observe({"at": "2026-01-01T10:00:00Z"})
    with pytest.raises(DataError, match="not a time; give ISO 8601"):
        event_time("yesterday-ish", "at")
    with pytest.raises(DataError, match="already a column"):
        window_columns(pd.DataFrame({"at": [0.0], "driver": ["a"], "trips": [1]}), [spec], "at")


def test_the_spec_checks_windows() -> None:
    base = {
        "name": "rides",
        "task": "regression",
        "target": "y",
        "data": {"source": {"path": "rides.csv"}},
        "model": {"estimator": "sklearn.linear_model.Ridge"},
    }
    window = {"name": "trips", "key": "driver", "agg": "count", "minutes": 60}
    with pytest.raises(ValueError, match="need data.timestamp_column"):
        ProjectSpec.model_validate({**base, "features": {"windows": [window]}})
    with pytest.raises(ValueError, match="exactly one of minutes or events"):
        WindowSpec.model_validate({**window, "events": 3})
    with pytest.raises(ValueError, match="sum needs over"):
        WindowSpec.model_validate({**window, "agg": "sum"})
