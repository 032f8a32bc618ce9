"""Drift of synthetic windows: injected changes are found, unchanged windows stay quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.monitoring.drift import MonitorConfig, correct, population_stability_index
from modelyard.monitoring.profile import ReferenceProfile, build_profile, feature_kinds
from modelyard.monitoring.results import ColumnDrift, TestResult, WindowReport
from modelyard.monitoring.summary import WindowSummary, assess

TOWNS = np.array(["alpha", "beta", "gamma", "delta"])


def population(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """The reference distribution: two correlated numbers, a count, a category."""
    size = rng.normal(100.0, 20.0, rows)
    return pd.DataFrame(
        {
            "size": size,
            "rooms": rng.poisson(3.0, rows).astype(np.float64),
            "town": rng.choice(TOWNS, size=rows, p=[0.4, 0.3, 0.2, 0.1]),
            "garden": size * 0.5 + rng.normal(0.0, 4.0, rows),
        }
    )


def predict(frame: pd.DataFrame) -> pd.Series:
    return 1000.0 * frame["size"] + 5000.0 * frame["rooms"]


@pytest.fixture(scope="module")
def reference() -> tuple[ReferenceProfile, pd.DataFrame]:
    rng = np.random.default_rng(1)
    train = population(4000, rng)
    kinds = feature_kinds(train, categorical=["town"])
    profile = build_profile(
        model="houses",
        version=1,
        task="regression",
        train=train,
        kinds=kinds,
        predictions=predict(population(1000, rng)),
    )
    return profile, train.sample(1000, random_state=0)


def check(
    reference: tuple[ReferenceProfile, pd.DataFrame],
    window: pd.DataFrame,
    config: MonitorConfig | None = None,
    *,
    chunks: int = 3,
) -> WindowReport:
    profile, sample = reference
    summary = WindowSummary(profile, config=config or MonitorConfig())
    for part in np.array_split(np.arange(len(window)), chunks):
        rows = window.iloc[part]
        summary.add(rows, predict(rows))
    return assess(summary, reference_sample=sample)


def drifting(report: WindowReport) -> set[str]:
    return {column.column for column in report.features if column.drift}


def test_unchanged_window_is_quiet(reference: tuple[ReferenceProfile, pd.DataFrame]) -> None:
    report = check(reference, population(2000, np.random.default_rng(5)))
    assert not report.too_small
    assert drifting(report) == set()
    assert report.prediction is not None and not report.prediction.drift
    assert report.multivariate is not None and not report.multivariate.drift
    assert not report.quality_problems
    for column in report.features:  # every test reports its p-value and effect size
        assert column.tests and all(0 <= t.p_adjusted <= 1 for t in column.tests)


def test_shift_is_found_and_moves_the_predictions(
    reference: tuple[ReferenceProfile, pd.DataFrame],
) -> None:
    window = population(1000, np.random.default_rng(6))
    window["size"] += 15.0  # three quarters of a standard deviation
    report = check(reference, window)
    assert "size" in drifting(report)
    ks = next(t for t in report.features[0].tests if t.test == "ks")
    assert ks.effect == "wasserstein" and ks.effect_size == pytest.approx(0.75, abs=0.1)
    assert report.prediction is not None and report.prediction.drift


def test_scale_change_is_found(reference: tuple[ReferenceProfile, pd.DataFrame]) -> None:
    window = population(1000, np.random.default_rng(7))
    window["size"] = 100.0 + (window["size"] - 100.0) * 2.0
    assert "size" in drifting(check(reference, window))


def test_new_category_is_found_and_named(reference: tuple[ReferenceProfile, pd.DataFrame]) -> None:
    window = population(1000, np.random.default_rng(8))
    window.loc[window.index[:250], "town"] = "omega"
    report = check(reference, window)
    assert drifting(report) == {"town"}
    town = next(q for q in report.quality if q.column == "town")
    assert town.unseen_categories == 250 and town.unseen_examples == ["omega"]
    assert town.problems


def test_missing_values_are_found(reference: tuple[ReferenceProfile, pd.DataFrame]) -> None:
    window = population(1000, np.random.default_rng(9))
    window.loc[window.index[::3], "rooms"] = np.nan
    report = check(reference, window)
    assert "rooms" in drifting(report)
    rooms = next(c for c in report.features if c.column == "rooms")
    psi = next(t for t in rooms.tests if t.effect == "psi")
    assert psi.drift
    quality = next(q for q in report.quality if q.column == "rooms")
    assert quality.missing_rate == pytest.approx(1 / 3, abs=0.01)
    assert quality.problems


def test_joint_change_is_found_only_by_the_multivariate_check(
    reference: tuple[ReferenceProfile, pd.DataFrame],
) -> None:
    window = population(1000, np.random.default_rng(10))
    # Same marginals, broken relation: garden no longer follows size.
    window["garden"] = np.random.default_rng(11).permutation(window["garden"].to_numpy())
    report = check(reference, window)
    assert drifting(report) == set()
    assert report.multivariate is not None
    assert report.multivariate.drift and report.multivariate.auc > 0.7


def test_small_window_is_too_small_never_drift(
    reference: tuple[ReferenceProfile, pd.DataFrame],
) -> None:
    window = population(50, np.random.default_rng(12))
    window["size"] += 100.0
    report = check(reference, window, chunks=1)
    assert report.too_small and report.rows == 50
    assert report.features == [] and report.prediction is None and report.multivariate is None


def test_false_alarm_rate_over_many_windows(
    reference: tuple[ReferenceProfile, pd.DataFrame],
) -> None:
    # 200 windows of 500 rows from the reference distribution. The share of windows with
    # any alarm must stay within alpha, with the default effect thresholds and also with
    # the effect thresholds off, when only the corrected p-values decide (BH controls the
    # family-wise rate when nothing changed): at most alpha plus 3 standard errors.
    rng = np.random.default_rng(13)
    no_effect = MonitorConfig(psi=0, wasserstein=0, jensen_shannon=0, multivariate_rows=0)
    default = MonitorConfig(multivariate_rows=0)
    windows = [population(500, rng) for _ in range(200)]
    alarms_default = sum(bool(drifting(check(reference, w, default, chunks=1))) for w in windows)
    alarms_p_only = sum(bool(drifting(check(reference, w, no_effect, chunks=1))) for w in windows)
    alpha = no_effect.alpha
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / len(windows))
    assert alarms_default / len(windows) <= alpha
    assert alarms_default <= alarms_p_only
    assert alarms_p_only / len(windows) <= bound


def test_large_unchanged_window_is_quiet(
    reference: tuple[ReferenceProfile, pd.DataFrame],
) -> None:
    window = population(50_000, np.random.default_rng(15))
    report = check(reference, window, MonitorConfig(multivariate_rows=0), chunks=10)
    assert drifting(report) == set() and report.prediction is not None
    assert not report.prediction.drift
    # Tiny differences are significant at this size; the effect sizes keep them quiet.
    assert all(t.effect_size < t.threshold for c in report.features for t in c.tests)


def test_domain_classifier_false_alarms(reference: tuple[ReferenceProfile, pd.DataFrame]) -> None:
    rng = np.random.default_rng(14)
    config = MonitorConfig(multivariate_rows=500)
    alarms = 0
    for _ in range(20):
        report = check(reference, population(500, rng), config, chunks=1)
        assert report.multivariate is not None and report.multivariate.auc < config.auc
        alarms += report.multivariate.drift
    assert alarms == 0


def test_correction_needs_both_p_value_and_effect_size() -> None:
    def column(p_value: float, effect: float) -> ColumnDrift:
        test = TestResult(
            test="chi2",
            statistic=1.0,
            p_value=p_value,
            p_adjusted=p_value,
            effect="psi",
            effect_size=effect,
            threshold=0.2,
            drift=False,
        )
        return ColumnDrift(column="x", kind="numeric", rows=10, tests=[test], drift=False)

    bh = correct([column(1e-9, 0.5), column(1e-9, 0.05), column(0.04, 0.5)], MonitorConfig())
    assert [c.drift for c in bh] == [True, False, True]  # 0.04 * 3 / 3 = 0.04 < 0.05
    holm = correct(
        [column(1e-9, 0.5), column(1e-9, 0.05), column(0.04, 0.5)],
        MonitorConfig(correction="holm"),
    )
    assert [c.drift for c in holm] == [True, False, True]
    assert holm[2].tests[0].p_adjusted == pytest.approx(0.04)
    holm_many = correct([column(0.02, 0.5)] * 3, MonitorConfig(correction="holm"))
    assert [c.tests[0].p_adjusted for c in holm_many] == pytest.approx([0.06, 0.06, 0.06])


def test_psi_of_a_known_shift() -> None:
    assert population_stability_index(np.array([50, 50]), np.array([50, 50])) == 0.0
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert population_stability_index(np.array([5, 5]), np.array([8, 2])) == pytest.approx(expected)
