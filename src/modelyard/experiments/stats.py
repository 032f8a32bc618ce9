"""Experiment statistics: a sequential A/B test, a bandit, and interleaving.

Pure NumPy and SciPy; nothing here reads a clock, a file or a network.

- **A/B test, sequential** (:func:`design_ab_test`, :func:`msprt`): the mixture
  sequential probability ratio test (mSPRT, Johari, Koomen, Pekelis and Walsh, "Always
  valid inference", 2017) with a normal mixing distribution on the difference of means.
  Its p-value is valid at every look, so the test may be read after every request: the
  chance that it ever declares a difference where there is none is at most ``alpha``.
  The design gives the largest sample per arm the experiment needs: the smallest ``n``
  at which the test, at that single look, already finds the declared effect with the
  declared power (looks before it can only add power). Stopping there without a
  decision says "no difference of the declared size".
- **Bandit** (:class:`ThompsonSampling`, :func:`simulate_bandit`): Bernoulli Thompson
  sampling with Beta(1, 1) priors; the simulation reports cumulative regret and each
  arm's share of pulls over time.
- **Interleaving** (:func:`team_draft`, :func:`credit`, :func:`preference_test`):
  team-draft interleaving of two rankings (Radlinski, Kurup and Joachims, 2008), credit
  from clicks, and a two-sided binomial sign test on the impressions that preferred one.

Written here rather than taken from a library: the maintained Python packages for these
(statsmodels has fixed-horizon power only; no maintained package offers mSPRT or
team-draft interleaving) would add a heavy dependency for a few dozen lines.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from scipy import stats as _stats

from modelyard.errors import ModelyardError

__all__ = [
    "ABDesign",
    "ABResult",
    "BanditReport",
    "PreferenceResult",
    "ThompsonSampling",
    "credit",
    "design_ab_test",
    "msprt",
    "msprt_ratio",
    "preference_test",
    "simulate_bandit",
    "team_draft",
]

T = TypeVar("T", bound=Hashable)
Decision = Literal["winner", "loser", "not yet", "no difference"]


# -- A/B test: mSPRT ------------------------------------------------------------------


@dataclass(frozen=True)
class ABDesign:
    """A sequential A/B test, declared before it starts.

    Attributes:
        mde: the minimum detectable effect: a difference of means (candidate minus
            control) the test must find with probability ``power``.
        sigma: the standard deviation of one observation (of each arm).
        alpha: the largest chance of declaring a difference that is not there.
        power: the smallest chance of finding a difference of ``mde``.
        tau: the mixing distribution's standard deviation (``mde`` by default).
        max_per_arm: the sample per arm at which the test stops.
    """

    mde: float
    sigma: float
    alpha: float
    power: float
    tau: float
    max_per_arm: int


def msprt_ratio(
    difference: np.ndarray | float, variance: np.ndarray | float, tau: float
) -> np.ndarray:
    """The mSPRT likelihood ratio of "the difference is 0" under a N(0, tau²) mixture.

    ``difference`` is the observed difference of means, ``variance`` its variance
    (``s_a²/n_a + s_b²/n_b``); both may be arrays (many experiments or looks at once).
    The test rejects when the ratio reaches ``1 / alpha``.
    """
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = 0.5 * np.log(v / (v + t2)) + d * d * t2 / (2.0 * v * (v + t2))
    return np.exp(np.minimum(log_ratio, 700.0))


def design_ab_test(
    *, mde: float, sigma: float, alpha: float = 0.05, power: float = 0.8, tau: float | None = None
) -> ABDesign:
    """The sequential test that finds a difference of ``mde`` with ``power``.

    Raises:
        ModelyardError: a parameter is out of range.
    """
    if not (mde > 0 and sigma > 0 and 0 < alpha < 1 and 0 < power < 1):
        raise ModelyardError(
            f"an A/B design needs mde > 0, sigma > 0 and alpha, power in (0, 1); got "
            f"mde={mde}, sigma={sigma}, alpha={alpha}, power={power}"
        )
    tau = mde if tau is None else tau

    def power_at(n: int) -> float:
        # The test rejects at n when |d| >= c: solve the ratio = 1/alpha for d.
        v = 2.0 * sigma * sigma / n
        t2 = tau * tau
        c = math.sqrt(
            2.0 * v * (v + t2) / t2 * (math.log(1 / alpha) + 0.5 * math.log((v + t2) / v))
        )
        sd = math.sqrt(v)
        return float(_stats.norm.sf((c - mde) / sd) + _stats.norm.cdf((-c - mde) / sd))

    low, high = 1, 2
    while power_at(high) < power:
        low, high = high, high * 2
    while high - low > 1:  # power grows with n: bisect for the smallest n reaching it
        middle = (low + high) // 2
        if power_at(middle) >= power:
            high = middle
        else:
            low = middle
    return ABDesign(mde, sigma, alpha, power, tau, high)


@dataclass(frozen=True)
class ABResult:
    """Where a sequential A/B test stands at one look.

    ``decision``: ``winner`` (the candidate is better), ``loser`` (worse), ``not yet``,
    or ``no difference`` (the maximum sample was reached without a decision).
    """

    decision: Decision
    n_control: int
    n_candidate: int
    difference: float
    p_value: float
    ratio: float
    threshold: float
    max_per_arm: int
    remaining_per_arm: int

    def as_dict(self) -> dict[str, object]:
        """Plain JSON data."""
        return dataclasses.asdict(self)


def msprt(
    design: ABDesign, control: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray
) -> ABResult:
    """Test ``candidate`` against ``control`` on every observation so far.

    The variance is the design's ``sigma`` (the declared one: the guarantee holds
    exactly for it); the p-value is the always-valid one, the smallest ``1 / ratio``
    over every look so far (each observation in arrival order, the arms interleaved
    by position).
    """
    a = np.asarray(control, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    looks = min(len(a), len(b))
    threshold = 1.0 / design.alpha
    if looks == 0:
        return ABResult(
            "not yet",
            len(a),
            len(b),
            0.0,
            1.0,
            1.0,
            threshold,
            design.max_per_arm,
            design.max_per_arm,
        )
    n = np.arange(1, looks + 1)
    d = np.cumsum(b[:looks]) / n - np.cumsum(a[:looks]) / n
    ratios = msprt_ratio(d, 2.0 * design.sigma**2 / n, design.tau)
    crossed = np.flatnonzero(ratios >= threshold)
    difference = float(b.mean() - a.mean())
    p_value = float(min(1.0, 1.0 / ratios.max()))
    if len(crossed):
        at = int(crossed[0])  # the first look that crossed decides, as a live test would
        decision: Decision = "winner" if d[at] > 0 else "loser"
    elif looks >= design.max_per_arm:
        decision = "no difference"
    else:
        decision = "not yet"
    return ABResult(
        decision,
        len(a),
        len(b),
        difference,
        p_value,
        float(ratios[-1]),
        threshold,
        design.max_per_arm,
        max(0, design.max_per_arm - looks),
    )


# -- bandit ---------------------------------------------------------------------------


class ThompsonSampling:
    """Bernoulli Thompson sampling over ``arms`` arms, Beta(1, 1) priors.

    Args:
        arms: how many arms.
        seed: the random generator's seed (None: fresh entropy).
    """

    def __init__(self, arms: int, *, seed: int | None = None) -> None:
        if arms < 2:
            raise ModelyardError(f"a bandit needs at least 2 arms, got {arms}")
        self.successes = np.zeros(arms)
        self.failures = np.zeros(arms)
        self._rng = np.random.default_rng(seed)

    def choose(self) -> int:
        """The arm to pull: the one whose posterior draw is highest."""
        draws = self._rng.beta(self.successes + 1, self.failures + 1)
        return int(np.argmax(draws))

    def update(self, arm: int, reward: float) -> None:
        """Record a reward in [0, 1] for ``arm`` (fractions count partly)."""
        if not 0.0 <= reward <= 1.0:
            raise ModelyardError(f"a bandit reward must be in [0, 1], got {reward}")
        self.successes[arm] += reward
        self.failures[arm] += 1.0 - reward

    def allocation(self) -> np.ndarray:
        """Each arm's share of the pulls so far."""
        pulls = self.successes + self.failures
        total = pulls.sum()
        return pulls / total if total else np.full(len(pulls), 1.0 / len(pulls))

    def means(self) -> np.ndarray:
        """Each arm's posterior mean reward."""
        return (self.successes + 1) / (self.successes + self.failures + 2)


@dataclass(frozen=True)
class BanditReport:
    """A simulated bandit: regret and allocation over time (averaged over runs).

    ``regret[t]`` is the expected cumulative regret after ``t + 1`` pulls (the best
    arm's mean minus the pulled arm's, summed); ``allocation[t, k]`` the share of runs
    that pulled arm ``k`` at step ``t``.
    """

    regret: np.ndarray
    allocation: np.ndarray

    def summary(self, checkpoints: Sequence[int]) -> list[dict[str, object]]:
        """Regret and the running allocation at ``checkpoints`` (pull counts)."""
        running = (
            np.cumsum(self.allocation, axis=0) / np.arange(1, len(self.allocation) + 1)[:, None]
        )
        return [
            {
                "pulls": t,
                "regret": float(self.regret[t - 1]),
                "allocation": [float(x) for x in running[t - 1]],
            }
            for t in checkpoints
        ]


def simulate_bandit(
    means: Sequence[float], horizon: int, *, runs: int = 100, seed: int = 0
) -> BanditReport:
    """Thompson sampling on Bernoulli arms with ``means``, ``runs`` times at once."""
    mu = np.asarray(means, dtype=np.float64)
    rng = np.random.default_rng(seed)
    successes = np.zeros((runs, len(mu)))
    failures = np.zeros((runs, len(mu)))
    rows = np.arange(runs)
    regret = np.empty(horizon)
    allocation = np.empty((horizon, len(mu)))
    total = 0.0
    for t in range(horizon):  # one step for every run at once
        arm = np.argmax(rng.beta(successes + 1, failures + 1), axis=1)
        reward = rng.random(runs) < mu[arm]
        successes[rows, arm] += reward
        failures[rows, arm] += ~reward
        total += float(np.mean(mu.max() - mu[arm]))
        regret[t] = total
        allocation[t] = np.bincount(arm, minlength=len(mu)) / runs
    return BanditReport(regret, allocation)


# -- interleaving ---------------------------------------------------------------------


def team_draft(
    ranking_a: Sequence[T],
    ranking_b: Sequence[T],
    *,
    rng: np.random.Generator,
    length: int | None = None,
) -> tuple[list[T], list[int]]:
    """Team-draft interleaving of two rankings of the same items.

    Each round, the team with fewer picks (a coin decides ties) adds its highest-ranked
    item not yet shown. Returns the interleaved list and, per position, the team that
    placed it (0 for ``ranking_a``, 1 for ``ranking_b``).
    """
    length = min(len(set(ranking_a) | set(ranking_b)), length or len(ranking_a) + len(ranking_b))
    shown: list[T] = []
    teams: list[int] = []
    seen: set[T] = set()
    picks = [0, 0]
    cursors = [0, 0]
    rankings = (ranking_a, ranking_b)
    while len(shown) < length:
        if picks[0] != picks[1]:
            team = 0 if picks[0] < picks[1] else 1
        else:
            team = int(rng.random() < 0.5)
        ranking = rankings[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in seen:
            cursors[team] += 1
        if cursors[team] >= len(ranking):  # this team has nothing left: the other picks
            team = 1 - team
            ranking = rankings[team]
            while cursors[team] < len(ranking) and ranking[cursors[team]] in seen:
                cursors[team] += 1
            if cursors[team] >= len(ranking):
                break
        item = ranking[cursors[team]]
        shown.append(item)
        teams.append(team)
        seen.add(item)
        picks[team] += 1
    return shown, teams


def credit(teams: Sequence[int], clicked: Sequence[int]) -> int:
    """Which team one impression preferred: +1 team 0 (A), -1 team 1 (B), 0 a tie.

    ``clicked`` are the clicked positions in the interleaved list.
    """
    a = sum(1 for position in clicked if teams[position] == 0)
    b = sum(1 for position in clicked if teams[position] == 1)
    return (a > b) - (a < b)


@dataclass(frozen=True)
class PreferenceResult:
    """Interleaving outcome: wins of A and B, ties, the preference and its p-value.

    ``delta`` is ``(wins_a - wins_b) / impressions``, in [-1, 1]: positive prefers A.
    """

    wins_a: int
    wins_b: int
    ties: int
    delta: float
    p_value: float

    def as_dict(self) -> dict[str, object]:
        """Plain JSON data."""
        return dataclasses.asdict(self)


def preference_test(outcomes: Sequence[int] | np.ndarray) -> PreferenceResult:
    """The sign test of interleaving outcomes (+1 A, -1 B, 0 tie): a two-sided binomial
    test of the wins against a fair coin, ties left out."""
    values = np.asarray(outcomes)
    wins_a = int((values > 0).sum())
    wins_b = int((values < 0).sum())
    ties = int((values == 0).sum())
    decided = wins_a + wins_b
    p_value = float(_stats.binomtest(wins_a, decided, 0.5).pvalue) if decided else 1.0
    delta = (wins_a - wins_b) / len(values) if len(values) else 0.0
    return PreferenceResult(wins_a, wins_b, ties, delta, p_value)
