"""The experiment statistics hold their promises, by simulation with a known truth.

Every simulation is vectorised and seeded: fast and the same on every run.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ModelyardError
from modelyard.experiments.stats import (
    ThompsonSampling,
    credit,
    design_ab_test,
    msprt,
    msprt_ratio,
    preference_test,
    simulate_bandit,
    team_draft,
)

RUNS = 2000


def _rejections(design, effect: float, seed: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """For RUNS experiments looked at after every pair: did the test ever reject, and
    the sign of the difference at its first rejection."""
    rng = np.random.default_rng(seed)
    n = design.max_per_arm
    control = rng.normal(0.0, design.sigma, (RUNS, n))
    candidate = rng.normal(effect, design.sigma, (RUNS, n))
    looks = np.arange(1, n + 1)
    difference = (np.cumsum(candidate, axis=1) - np.cumsum(control, axis=1)) / looks
    ratios = msprt_ratio(difference, 2 * design.sigma**2 / looks, design.tau)
    crossed = ratios >= 1 / design.alpha
    ever = crossed.any(axis=1)
    first = np.argmax(crossed, axis=1)
    sign = np.sign(difference[np.arange(RUNS), first])
    return ever, sign


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_no_true_difference_declares_a_winner_at_most_alpha_of_the_time(alpha: float) -> None:
    design = design_ab_test(mde=0.25, sigma=1.0, alpha=alpha, power=0.8)
    ever, sign = _rejections(design, 0.0, seed=11)
    # looked at after every single observation, up to the maximum sample
    assert ever.mean() <= alpha
    assert (ever & (sign > 0)).mean() <= alpha / 2 + 0.01  # winners: about half of those


@pytest.mark.parametrize("power", [0.8, 0.9])
def test_the_declared_effect_is_found_with_the_declared_power(power: float) -> None:
    design = design_ab_test(mde=0.25, sigma=1.0, alpha=0.05, power=power)
    ever, sign = _rejections(design, 0.25, seed=12)
    assert (ever & (sign > 0)).mean() >= power


def test_msprt_decisions_and_sample_size() -> None:
    design = design_ab_test(mde=0.25, sigma=1.0)
    rng = np.random.default_rng(3)
    better = msprt(
        design, rng.normal(0, 1, design.max_per_arm), rng.normal(0.5, 1, design.max_per_arm)
    )
    worse = msprt(
        design, rng.normal(0.5, 1, design.max_per_arm), rng.normal(0, 1, design.max_per_arm)
    )
    early = msprt(design, rng.normal(0, 1, 10), rng.normal(0, 1, 10))
    assert (better.decision, worse.decision, early.decision) == ("winner", "loser", "not yet")
    assert better.p_value <= 0.05 and early.remaining_per_arm == design.max_per_arm - 10
    same = np.zeros(design.max_per_arm)
    assert msprt(design, same, same).decision == "no difference"
    # a fixed-horizon z-test needs 2 (z_.975 + z_.8)^2 / 0.25^2 ~ 252 per arm; always
    # valid inference costs more, but not without bound
    assert 252 < design.max_per_arm < 4 * 252
    with pytest.raises(ModelyardError, match="mde > 0"):
        design_ab_test(mde=0, sigma=1)


def test_thompson_regret_grows_sublinearly_and_allocation_goes_to_the_best_arm() -> None:
    report = simulate_bandit([0.3, 0.5, 0.55], horizon=4000, runs=60, seed=7)
    early, late = report.regret[999], report.regret[3999]
    assert late < 4 * early * 0.75  # four times the pulls, well under four times the regret
    assert late / 4000 < early / 1000
    [start, end] = report.summary([100, 4000])
    assert end["allocation"][2] > 0.5 and end["allocation"][2] > start["allocation"][2]


def test_thompson_sampling_one_step_at_a_time() -> None:
    bandit = ThompsonSampling(2, seed=1)
    rng = np.random.default_rng(2)
    for _ in range(2000):
        arm = bandit.choose()
        bandit.update(arm, float(rng.random() < (0.2, 0.6)[arm]))
    assert bandit.allocation()[1] > 0.8 and bandit.means()[1] > bandit.means()[0]
    with pytest.raises(ModelyardError, match=r"\[0, 1\]"):
        bandit.update(0, 2.0)


def test_team_draft_interleaving_keeps_each_rankings_order() -> None:
    rng = np.random.default_rng(0)
    a, b = list("abcdef"), list("fedcba")
    for _ in range(50):
        shown, teams = team_draft(a, b, rng=rng, length=4)
        assert len(shown) == len(set(shown)) == 4
        for team, ranking in ((0, a), (1, b)):
            picked = [item for item, t in zip(shown, teams, strict=True) if t == team]
            assert picked == sorted(picked, key=ranking.index)
        assert abs(teams.count(0) - teams.count(1)) <= 1
    assert (
        credit([0, 1, 0, 1], [0, 2]) == 1 and credit([0, 1], [1]) == -1 and credit([0, 1], []) == 0
    )


def _interleaving_outcomes(
    noise_a: float, noise_b: float, seed: int, impressions: int = 1500
) -> np.ndarray:
    """Users click by true relevance with a position bias (a cascade-like click model)."""
    rng = np.random.default_rng(seed)
    outcomes = np.empty(impressions, dtype=int)
    for i in range(impressions):
        relevance = rng.random(20)
        items = list(range(20))
        ranking_a = sorted(items, key=lambda k: -(relevance[k] + rng.normal(0, noise_a)))
        ranking_b = sorted(items, key=lambda k: -(relevance[k] + rng.normal(0, noise_b)))
        shown, teams = team_draft(ranking_a, ranking_b, rng=rng, length=10)
        chance = relevance[shown] ** 2 / (1 + np.arange(10))
        clicked = np.flatnonzero(rng.random(10) < chance)
        outcomes[i] = credit(teams, clicked)
    return outcomes


def test_interleaving_detects_a_planted_preference() -> None:
    result = preference_test(_interleaving_outcomes(0.05, 0.6, seed=5))
    assert result.p_value < 0.001 and result.delta > 0 and result.wins_a > result.wins_b
    swapped = preference_test(_interleaving_outcomes(0.6, 0.05, seed=5))
    assert swapped.p_value < 0.001 and swapped.delta < 0


def test_interleaving_finds_no_preference_between_equals() -> None:
    result = preference_test(_interleaving_outcomes(0.3, 0.3, seed=9, impressions=800))
    assert result.p_value > 0.01
