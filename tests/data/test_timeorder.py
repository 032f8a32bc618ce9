"""Evidence of time order: dates, year and month columns, monotone timestamps, panels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from _projects import AMES_CSV
from modelyard.data.timeorder import detect_time_order, looks_like_dates


def test_a_date_column_and_the_entities_of_a_panel() -> None:
    months = pd.date_range("2020-01-01", periods=12, freq="MS")
    frame = pd.DataFrame(
        {"city": ["a", "b", "c"] * 12, "month": months.repeat(3), "sales": range(36)}
    )
    found = detect_time_order(frame, target="sales")
    assert found is not None and (found.column, found.entity) == ("month", "city")
    assert "'month' holds dates (12 distinct)" in found.reason
    assert "a panel of 3 entities" in found.reason


def test_year_and_month_columns_without_a_date() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "year": np.repeat([2018, 2019, 2020, 2021], 30),
            "month": np.tile(np.arange(1, 13), 10),
            "listings": rng.poisson(300, 120),
            "sales": rng.normal(500, 50, 120),
        }
    )
    found = detect_time_order(frame, target="sales")
    assert found is not None and found.column == "year"
    assert (
        found.reason
        == "'year' holds years (2018-2021) and 'month' months: the rows are ordered in time"
    )


def test_ames_sale_year_not_build_year() -> None:
    # Yr.Sold pairs with Mo.Sold by name; Year.Built describes the house, not the sale.
    found = detect_time_order(pd.read_csv(AMES_CSV), target="price", exclude=("Order", "PID"))
    assert found is not None and found.column == "Yr.Sold"
    assert "'Mo.Sold' months" in found.reason


def test_a_timestamp_that_never_decreases() -> None:
    rng = np.random.default_rng(2)
    rows = 200
    frame = pd.DataFrame(
        {
            "event_time": 1_700_000_000 + np.cumsum(rng.integers(1, 600, rows)),
            "amount": rng.gamma(2, 30, rows),
            "fraud": rng.choice(["yes", "no"], rows),
        }
    )
    found = detect_time_order(frame, target="fraud")
    assert found is not None and found.column == "event_time"
    assert "never decreases in file order" in found.reason
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert detect_time_order(shuffled, target="fraud") is None


def test_no_time_order_in_plain_rows() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 300),
            "income": rng.lognormal(10, 0.5, 300),
            "segment": rng.choice(["a", "b", "c"], 300),
            "label": rng.choice(["yes", "no"], 300),
        }
    )
    assert detect_time_order(frame, target="label") is None


def test_dates_in_text() -> None:
    assert looks_like_dates(pd.Series(["2024-01-05", "2024-02-11", None]))
    assert looks_like_dates(pd.Series(["05/01/2024 10:30", "11/02/2024 08:00"]))
    assert not looks_like_dates(pd.Series(["2024-01-05", "soon"]))
    assert not looks_like_dates(pd.Series([20240105, 20240211]))
