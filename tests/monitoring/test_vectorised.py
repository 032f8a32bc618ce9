"""The fast forms of the window computations give what the plain forms give.

Each fast form (counting categories by value, the lazily built row sample, the
distances from one sorted sample) is checked against the straightforward computation
on random data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from modelyard.data.schema import category_keys
from modelyard.monitoring.columns import category_counts
from modelyard.monitoring.drift import MonitorConfig, ks_and_wasserstein
from modelyard.monitoring.profile import build_profile
from modelyard.monitoring.sample import RowSample
from modelyard.monitoring.summary import WindowSummary


def _columns(rng: np.random.Generator, size: int) -> dict[str, pd.Series]:
    floats = rng.choice([0.0, -0.0, 1.0, 2.5, 2.0**70, np.inf, -np.inf, 7.0, 1e16, np.nan], size)
    texts = rng.choice(np.array(["a", "b", "c", "dé", "2", "", None], object), size)
    return {
        "text": pd.Series(texts),  # Arrow-backed, with missing values
        "python_text": pd.Series(texts, dtype=pd.StringDtype("python")),
        "object_text": pd.Series(texts, dtype=object),
        "floats": pd.Series(floats),
        "ints": pd.Series(rng.integers(-3, 4, size)),
        "flags": pd.Series(rng.random(size) < 0.3),
        "mixed": pd.Series(rng.choice(np.array([1, True, 1.0, "1", 2, False, 0.0], object), size)),
        "categorical": pd.Series(
            pd.Categorical(rng.choice(["x", "y", None], size), categories=["z", "y", "x"])
        ),
        "categorical_numbers": pd.Series(pd.Categorical(rng.choice([1.0, 2.5, 2.0**70], size))),
    }


@pytest.mark.parametrize("seed", range(5))
def test_category_counts_match_row_by_row_texts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, values in _columns(rng, int(rng.integers(1, 300))).items():
        keys, counts = category_counts(values)
        plain = category_keys(values.dropna()).value_counts(sort=False)
        # Same texts, same counts, same order (the order names unseen examples).
        assert keys.tolist() == plain.index.tolist(), name
        assert counts.tolist() == plain.tolist(), name


def _eager(chunks: list[pd.DataFrame], limit: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The sample as it was computed before: each chunk's whole frame joined, then cut."""
    rng = np.random.default_rng(seed)
    sample, keys = pd.DataFrame(), np.zeros(0)
    for frame in chunks:
        keys = np.concatenate([keys, rng.random(len(frame))])
        both = pd.concat([sample, frame.reset_index(drop=True)], ignore_index=True)
        if len(both) > limit:
            kept = np.argpartition(keys, limit)[:limit]
            both, keys = both.iloc[kept].reset_index(drop=True), keys[kept]
        sample = both
    return sample, keys


@pytest.mark.parametrize("seed", range(6))
def test_row_sample_is_the_eager_bottom_k_sample(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    limit = int(rng.integers(5, 120))
    chunks = []
    start = 0
    for number in range(int(rng.integers(1, 60))):
        size = int(rng.integers(0, 3 * limit))
        frame = pd.DataFrame(
            {
                "x": np.arange(start, start + size, dtype=np.float64),
                "town": pd.Series(rng.choice(["a", "b", "c"], size)),
                "prediction": rng.choice(["yes", "no"], size).astype(object),
            },
            index=np.arange(size) + 7,  # not a range from 0: positions, not labels, count
        )
        if number % 7 == 3:  # an input absent from some chunks: None there
            frame["town"] = pd.Series(None, index=frame.index, dtype=object)
        chunks.append(frame)
        start += size
    sample = RowSample(limit, np.random.default_rng(seed))
    for frame in chunks:
        sample.offer(len(frame), lambda at, frame=frame: frame.iloc[at])
    expected, keys = _eager(chunks, limit, seed)
    pd.testing.assert_frame_equal(sample.frame, expected)
    np.testing.assert_array_equal(sample.keys, keys)
    assert len(sample.frame) == min(limit, start)


def test_row_sample_is_empty_before_any_rows() -> None:
    sample = RowSample(10, np.random.default_rng(0))
    assert sample.frame.empty and sample.keys.size == 0


@pytest.mark.parametrize("seed", range(8))
def test_ks_and_wasserstein_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=int(rng.integers(50, 3000)))
    # Ties and a shift, as logged integers and moved inputs give.
    current = np.round(rng.normal(0.2, 1.3, size=int(rng.integers(1, 4000))), int(seed % 3))
    grid = np.quantile(reference, np.linspace(0, 1, 501))
    distance, p_value, moved = ks_and_wasserstein(grid, np.sort(current), reference.size)
    assert moved == pytest.approx(stats.wasserstein_distance(grid, current), rel=1e-12)
    # The KS distance of the grid against the sample, as scipy gives it for the two.
    assert distance == pytest.approx(stats.ks_2samp(grid, current).statistic, abs=1e-12)
    effective = reference.size * current.size / (reference.size + current.size)
    assert p_value == pytest.approx(stats.kstwo.sf(distance, max(1, round(effective))))


@pytest.mark.parametrize("seed", range(4))
def test_categorical_chunks_count_as_their_texts(seed: int) -> None:
    """The log's text inputs come as categoricals: counted from their codes, a window
    holds what the same values as text give (bins, missing, unseen and its examples)."""
    rng = np.random.default_rng(200 + seed)
    train = pd.DataFrame({"town": rng.choice(["a", "b", "c", "1"], 300)})
    profile = build_profile(
        model="m",
        version=1,
        task="regression",
        train=train,
        kinds={"town": "categorical"},
        predictions=np.zeros(3),
    )
    as_codes = WindowSummary(profile, config=MonitorConfig())
    as_text = WindowSummary(profile, config=MonitorConfig())
    for _ in range(int(rng.integers(1, 8))):
        size = int(rng.integers(0, 400))
        values = rng.choice(np.array(["a", "b", "1", 1, "new", "x", 2.0, None], object), size)
        categories = pd.unique(pd.Series(values).dropna())[::-1]  # any order, and unused
        coded = pd.Categorical(values, categories=[*categories, "unused"])
        as_codes.add(pd.DataFrame({"town": coded}))
        as_text.add(pd.DataFrame({"town": pd.Series(values, dtype=object)}))
    codes, text = as_codes.column("town"), as_text.column("town")
    assert codes.bins.tolist() == text.bins.tolist()
    assert (codes.rows, codes.missing, codes.unseen) == (text.rows, text.missing, text.unseen)
    assert list(codes.examples.items()) == list(text.examples.items())


def _logged_chunk(rng: np.random.Generator, size: int, number: int) -> pa.Table:
    """A chunk as the monitor reads it from the log: float64 numbers with nulls, texts
    dictionary-encoded (each chunk its own dictionary), a prediction and probabilities;
    ``town`` absent from some chunks, as an input some requests did not send."""
    towns = rng.choice(np.array(["a", "b", "c", "new", "2", None], object), size)
    columns: dict[str, pa.Array] = {
        "area": pa.array(rng.choice([1.0, 2.5, 40.0, np.nan, -3.0, 1e9], size), from_pandas=True),
        "zone": pa.array(rng.choice(np.array(["x", "y", None], object), size)).dictionary_encode(),
        "prediction": pa.array(rng.normal(size=size)),
        "proba.yes": pa.array(rng.random(size)),
        "received_at": pa.array(
            np.arange(size, dtype=np.int64) + 10**15, pa.timestamp("us", "UTC")
        ),
    }
    if number % 3 != 2:
        columns["town"] = pa.array(towns).dictionary_encode()
    return pa.table(columns)


def _as_pandas(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    return frame


@pytest.mark.parametrize("seed", range(4))
def test_arrow_chunks_summarise_as_their_pandas_form(seed: int) -> None:
    """A window fed the log's Arrow chunks (add_arrow) holds what the same chunks in
    pandas (add) give: counts, unseen examples, first and last times, and the sample."""
    rng = np.random.default_rng(300 + seed)
    train = pd.DataFrame(
        {
            "area": rng.choice([1.0, 2.5, 40.0, np.nan], 400),
            "town": rng.choice(["a", "b", "c"], 400),
            "zone": rng.choice(["x", "y"], 400),
        }
    )
    profile = build_profile(
        model="m",
        version=1,
        task="regression",
        train=train,
        kinds={"area": "numeric", "town": "categorical", "zone": "categorical"},
        predictions=rng.normal(size=50),
    )
    config = MonitorConfig(sample_rows=int(rng.integers(100, 400)))
    arrow = WindowSummary(profile, config=config, seed=seed)
    plain = WindowSummary(profile, config=config, seed=seed)
    for number in range(int(rng.integers(1, 12))):
        table = _logged_chunk(rng, int(rng.integers(0, 300)), number)
        arrow.add_arrow(table)
        frame = _as_pandas(table)
        plain.add(
            frame[[c for c in ("area", "town", "zone") if c in frame.columns]],
            frame["prediction"],
            proba=frame[["proba.yes"]],
            received_at=frame["received_at"],
        )
    assert (arrow.rows, arrow.first_at, arrow.last_at) == (
        plain.rows,
        plain.first_at,
        plain.last_at,
    )
    for name in ("area", "town", "zone", "prediction"):
        ours, theirs = arrow.column(name), plain.column(name)
        assert ours.bins.tolist() == theirs.bins.tolist(), name
        assert (ours.rows, ours.missing, ours.unseen, ours.out_of_range) == (
            theirs.rows,
            theirs.missing,
            theirs.unseen,
            theirs.out_of_range,
        ), name
        assert list(ours.examples.items()) == list(theirs.examples.items()), name
    np.testing.assert_array_equal(arrow.subsample(10**6).index, plain.subsample(10**6).index)
    ours, theirs = arrow.sample, plain.sample
    assert list(ours.columns) == list(theirs.columns)
    for name in ours.columns:  # missing texts: None in one, NaN in the other
        left, right = ours[name], theirs[name]
        assert left.isna().tolist() == right.isna().tolist(), name
        assert left[left.notna()].tolist() == right[right.notna()].tolist(), name


def test_a_window_takes_chunks_of_one_kind() -> None:
    profile = build_profile(
        model="m",
        version=1,
        task="regression",
        train=pd.DataFrame({"area": [1.0, 2.0, 3.0]}),
        kinds={"area": "numeric"},
        predictions=np.zeros(3),
    )
    summary = WindowSummary(profile, config=MonitorConfig())
    summary.add(pd.DataFrame({"area": [1.0, 2.0]}))
    with pytest.raises(TypeError, match="all pandas"):
        summary.add_arrow(pa.table({"area": [1.0]}))
