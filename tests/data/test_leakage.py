"""Target-leak checks: each kind of leak found with its evidence, honest columns left alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.data.leakage import find_leaks


def homes(rows: int = 1500, seed: int = 3) -> pd.DataFrame:
    """Honest features of a price: area, rooms, a town."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40, 250, rows)
    rooms = rng.integers(1, 7, rows)
    town = rng.choice(["north", "south", "east", "west"], rows)
    price = 2500 * area * rng.lognormal(0, 0.15, rows) + 9000 * rooms
    return pd.DataFrame({"area": area.round(1), "rooms": rooms, "town": town, "price": price})


def _leaks(frame: pd.DataFrame, target: str, task: str) -> dict[str, str]:
    features = [c for c in frame.columns if c != target]
    return {
        leak.column: leak.kind
        for leak in find_leaks(frame, target=target, task=task, features=features, seed=0)
    }


def test_honest_features_are_not_flagged() -> None:
    assert _leaks(homes(), "price", "regression") == {}


def test_a_noisy_copy_of_the_target_predicts_it() -> None:
    frame = homes()
    frame["appraisal"] = frame["price"] * np.random.default_rng(1).normal(1, 0.01, len(frame))
    (leak,) = find_leaks(
        frame, target="price", task="regression", features=["area", "appraisal"], seed=0
    )
    assert (leak.column, leak.kind) == ("appraisal", "predicts_target")
    assert "alone it predicts the target with R² 0.99" in leak.evidence
    assert leak.fix == "add 'appraisal' to features.drop (or mark it serving: false)"


def test_a_band_computed_from_the_target_is_derived_from_it() -> None:
    # The band alone cannot give the price (four values), but the price gives the band.
    frame = homes()
    frame["price_band"] = pd.qcut(frame["price"], 4, labels=["low", "mid", "high", "top"])
    frame["price_band"] = frame["price_band"].astype(str)
    assert _leaks(frame, "price", "regression") == {"price_band": "derived_from_target"}


def test_a_flag_computed_from_a_class_target_is_derived_from_it() -> None:
    # Set from the outcome (escalated for grades b and c): the flag cannot give the grade,
    # the grade gives the flag.
    rng = np.random.default_rng(2)
    rows = 1200
    frame = pd.DataFrame(
        {"tenure": rng.gamma(2.0, 12.0, rows), "plan": rng.choice(["p", "q"], rows)}
    )
    frame["grade"] = rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2])
    frame["escalated"] = np.where(frame["grade"] == "a", "no", "yes")
    assert _leaks(frame, "grade", "multiclass") == {"escalated": "derived_from_target"}


def test_volume_next_to_sales_is_a_target_ratio() -> None:
    # The monthly housing table: volume = sales x average price, the target is sales.
    rng = np.random.default_rng(4)
    rows = 1500
    sales = rng.poisson(300, rows) + 1.0
    average = rng.uniform(1e5, 5e5, rows).round(0)
    frame = pd.DataFrame(
        {
            "listings": rng.poisson(400, rows),
            "avg_price": average,
            "volume": (sales * average).round(0),
            "sales": sales,
        }
    )
    (leak,) = find_leaks(
        frame,
        target="sales",
        task="regression",
        features=["listings", "avg_price", "volume"],
        seed=0,
    )
    assert (leak.column, leak.kind) == ("volume", "target_ratio")
    assert "avg_price / volume reproduces the target" in leak.evidence


@pytest.mark.parametrize(
    ("values", "evidence"),
    [
        (lambda n: [f"T-{i:06d}" for i in np.random.default_rng(5).permutation(n)], "text"),
        (lambda n: 70_000 + np.random.default_rng(5).permutation(n), "consecutive"),
    ],
    ids=["text-ids", "dense-numbers"],
)
def test_identifier_columns(values: object, evidence: str) -> None:
    frame = homes()
    frame["ticket"] = values(len(frame))  # type: ignore[operator]
    (leak,) = find_leaks(
        frame, target="price", task="regression", features=["area", "ticket"], seed=0
    )
    assert (leak.column, leak.kind) == ("ticket", "identifier")
    assert evidence in leak.evidence


def test_too_few_rows_are_not_judged() -> None:
    frame = homes(rows=20)
    frame["copy"] = frame["price"]
    assert _leaks(frame, "price", "regression") == {}


def test_distinct_dates_are_not_identifiers() -> None:
    frame = homes()
    stamps = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(frame)) * 7, unit="h")
    frame["listed_at"] = stamps.strftime("%Y-%m-%d %H:%M")
    frame["listed_on"] = stamps
    assert _leaks(frame, "price", "regression") == {}
