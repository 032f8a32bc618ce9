"""Experiments on live traffic: which arm answered each request, the rewards clients post
back, the A/B test's sequential decision, the bandit's allocation and the interleaving
outcomes (used by :mod:`modelyard.serving.routing`).

State lives in this process (like the metrics): a server keeps the assignments of its
last :data:`ASSIGNMENTS_KEPT` requests to match rewards and clicks to the arm that
answered them. The A/B test's decisions are written to the registry's audit trail.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import DataValidationError
from modelyard.experiments.stats import (
    ThompsonSampling,
    credit,
    design_ab_test,
    msprt,
    preference_test,
)

if TYPE_CHECKING:
    from modelyard.experiments.policy import RoutingPolicy
    from modelyard.experiments.stats import ABDesign, ABResult
    from modelyard.types import RuntimeOutput

__all__ = ["ASSIGNMENTS_KEPT", "LiveExperiment", "ranking_of"]

#: Requests whose arm (or interleaved teams) is remembered for rewards and clicks.
ASSIGNMENTS_KEPT = 100_000

_USED = object()  # marks a row already scored by its label


@dataclass(eq=False)
class LiveExperiment:
    """One route's live experiment state."""

    policy: RoutingPolicy
    assignments: collections.OrderedDict[str, str] = field(default_factory=collections.OrderedDict)
    rewards: dict[str, list[float]] = field(default_factory=dict)
    unmatched: int = 0
    bandit: ThompsonSampling | None = None
    bandit_arms: list[str] = field(default_factory=list)
    pulls: list[int] = field(default_factory=list)
    teams: collections.OrderedDict[str, list[int]] = field(default_factory=collections.OrderedDict)
    outcomes: list[int] = field(default_factory=list)
    design: ABDesign | None = None
    decision: str = "not yet"
    #: per request, its rows' predictions until each is labelled (``metric: labels``)
    outputs: collections.OrderedDict[str, list[Any]] = field(
        default_factory=collections.OrderedDict
    )

    def __post_init__(self) -> None:
        if self.policy.bandit is not None:
            self.bandit_arms = ["primary"] + [
                f"bandit:{n}" for n in range(1, len(self.policy.bandit.refs) + 1)
            ]
            self.bandit = ThompsonSampling(len(self.bandit_arms))
            self.pulls = [0] * len(self.bandit_arms)
        canary = self.policy.canary
        if canary is not None and canary.ab is not None:
            ab = canary.ab
            self.design = design_ab_test(mde=ab.mde, sigma=ab.sigma, alpha=ab.alpha, power=ab.power)

    # -- assignments ----------------------------------------------------------------

    def choose_bandit_arm(self) -> str:
        """The arm Thompson sampling picks for the next request."""
        assert self.bandit is not None
        index = self.bandit.choose()
        self.pulls[index] += 1
        return self.bandit_arms[index]

    def assign(self, request_id: str, arm: str) -> None:
        """Remember that ``arm`` answered ``request_id``."""
        _remember(self.assignments, request_id, arm)

    @property
    def judged_by_labels(self) -> bool:
        """Whether the A/B test scores the true labels (``metric: labels``)."""
        canary = self.policy.canary
        return canary is not None and canary.ab is not None and canary.ab.metric == "labels"

    def keep_output(self, request_id: str, values: np.ndarray) -> None:
        """Keep a request's predictions until its labels come (``metric: labels`` only)."""
        if self.judged_by_labels:
            _remember(self.outputs, request_id, list(values))

    def label(self, request_id: str, row: int, label: Any, task: str) -> tuple[str, float] | None:
        """Score row ``row`` of ``request_id`` by its true ``label`` and credit the arm
        that answered it; returns (arm, reward), or None when the row is not known here,
        was labelled before (a row counts once), or the label cannot score it."""
        from modelyard.experiments.policy import label_reward

        values = self.outputs.get(request_id)
        arm = self.assignments.get(request_id)
        if values is None or arm is None or not 0 <= row < len(values) or values[row] is _USED:
            return None
        value = label_reward(task, values[row], label)
        if value is None:
            return None
        values[row] = _USED
        self.rewards.setdefault(arm, []).append(value)
        return arm, value

    def reward(self, request_id: str, value: float) -> str | None:
        """Credit ``value`` to the arm that answered ``request_id`` (None: not known here).

        Raises:
            DataValidationError: a bandit's reward outside [0, 1], or a non-finite one,
                or a reward posted to an A/B test that scores the labels.
        """
        if self.judged_by_labels:
            raise DataValidationError(
                "this canary's A/B test scores the true labels (metric: labels), so it "
                "takes no rewards; send the labels to /v1/feedback"
            )
        if not np.isfinite(value):
            raise DataValidationError(f"reward {value} is not a finite number")
        arm = self.assignments.get(request_id)
        if arm is None:
            self.unmatched += 1
            return None
        if self.bandit is not None:
            if not 0.0 <= value <= 1.0:
                raise DataValidationError(
                    f"a bandit's reward must be in [0, 1] (e.g. 1 for a click), got {value}"
                )
            self.bandit.update(self.bandit_arms.index(arm), value)
        self.rewards.setdefault(arm, []).append(value)
        return arm

    def ab_result(self) -> ABResult | None:
        """The sequential A/B test on the rewards so far (None without an A/B test)."""
        if self.design is None:
            return None
        return msprt(self.design, self.rewards.get("primary", []), self.rewards.get("canary", []))

    # -- interleaving ---------------------------------------------------------------

    def remember_teams(self, request_id: str, teams: list[int]) -> None:
        """Remember who placed each position of an interleaved ranking."""
        _remember(self.teams, request_id, teams)

    def clicks(self, request_id: str, clicked: list[int]) -> int:
        """Credit the clicks on one interleaved ranking: +1 primary, -1 candidate, 0 tie.

        Raises:
            DataValidationError: an unknown request id, or a position not shown.
        """
        teams = self.teams.pop(request_id, None)
        if teams is None:
            raise DataValidationError(
                f"no interleaved ranking {request_id!r} is waiting for clicks on this server "
                "(clicks count once, for the last rankings only); send the request_id "
                "the /rank reply gave"
            )
        wrong = [p for p in clicked if not 0 <= p < len(teams)]
        if wrong:
            self.teams[request_id] = teams
            raise DataValidationError(
                f"clicked position {wrong[0]} was not shown (the ranking had {len(teams)})"
            )
        outcome = credit(teams, clicked)
        self.outcomes.append(outcome)
        return outcome

    # -- reporting ------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Rewards per arm, and the A/B test, bandit and interleaving reports."""
        report: dict[str, Any] = {
            "rewards": {
                arm: {"count": len(values), "mean": float(np.mean(values))}
                for arm, values in self.rewards.items()
            },
            "unmatched_rewards": self.unmatched,
        }
        result = self.ab_result()
        if result is not None and self.design is not None:
            report["ab_test"] = {
                "design": {
                    "mde": self.design.mde,
                    "sigma": self.design.sigma,
                    "alpha": self.design.alpha,
                    "power": self.design.power,
                    "max_per_arm": self.design.max_per_arm,
                },
                **result.as_dict(),
            }
        if self.bandit is not None:
            means = self.bandit.means()
            total = sum(self.pulls)
            report["bandit"] = {
                "arms": self.bandit_arms,
                "pulls": self.pulls,
                "allocation": [p / total if total else 0.0 for p in self.pulls],
                "posterior_means": [float(m) for m in means],
                # against the arm now believed best: the regret is estimated, not known
                "estimated_regret": float(np.dot(self.pulls, means.max() - means)),
            }
        if self.policy.interleave is not None:
            report["interleaving"] = {
                "impressions": len(self.outcomes),
                "waiting_for_clicks": len(self.teams),
                **preference_test(self.outcomes).as_dict(),
            }
        return report


def _remember(store: collections.OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    if len(store) > ASSIGNMENTS_KEPT:
        store.popitem(last=False)


def ranking_of(output: RuntimeOutput) -> list[int]:
    """Row positions by score, best first: the prediction (regression), or the
    probability of the last class (binary: the positive one). Ties keep row order."""
    if output.proba is not None:
        scores = np.asarray(output.proba, dtype=np.float64)[:, -1]
    else:
        scores = np.asarray(output.values, dtype=np.float64)
    return [int(i) for i in np.argsort(-scores, kind="stable")]
