"""The routing policy of one model name, and the pure decisions it implies.

A policy says, for requests to one served model name, which other versions take part:

- ``shadow``: a candidate scores a copy of every request (or a ``sample`` share) after
  the answer has gone out; its predictions are logged and compared with the primary's;
- ``canary``: a ``share`` of requests is answered by the candidate instead, sticky per
  routing key when asked, rolled back automatically by its :class:`RollbackRule`;
- ``fallback``: a version that answers when the primary errs or misses ``budget_ms``;
- ``composite``: the answer combines two or more versions' outputs with weights a
  request may set (``alpha``, ``beta``...) within declared bounds.

Version references are plain text here (``houses@candidate``, ``houses:3``); the
registry checks and resolves them when a policy is stored.

Example:
    >>> policy = RoutingPolicy.model_validate({"canary": {"ref": "houses:2", "share": 0.1}})
    >>> policy.canary.share
    0.1
    >>> 0.0 <= bucket("customer-42", "houses") < 1.0
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.contract.text import category_text
from modelyard.errors import DataValidationError, ModelyardError

__all__ = [
    "ABTest",
    "BanditPolicy",
    "CanaryPolicy",
    "CompositePart",
    "CompositePolicy",
    "FallbackPolicy",
    "InterleavePolicy",
    "RollbackRule",
    "RoutingPolicy",
    "ShadowPolicy",
    "bucket",
    "combine",
    "label_reward",
    "parse_policy",
    "rollback_reason",
]

Share = Annotated[float, Field(ge=0.0, le=1.0)]
WeightName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ShadowPolicy(_Frozen):
    """A candidate that scores copies of requests, off the response path."""

    ref: str = Field(description="The candidate, e.g. 'houses@candidate' or 'houses:3'.")
    sample: Share = Field(default=1.0, description="Share of requests copied to it.")
    timeout_ms: float = Field(default=2000.0, gt=0, description="A shadow call's time limit.")
    max_in_flight: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Copies waiting or being scored at once; more are skipped.",
    )
    batch_ms: float = Field(
        default=20.0,
        ge=0,
        le=10_000,
        description="Copies wait up to this long and are scored together: a few runtime "
        "calls instead of one per request, so less CPU taken from answers (0: each copy "
        "at once).",
    )
    idle: bool = Field(
        default=False,
        description="Run copies only on CPU time nothing else wants (Linux SCHED_IDLE): "
        "they never take CPU from answers, but on a busy machine most are skipped.",
    )


class RollbackRule(_Frozen):
    """When a canary is rolled back: after ``min_requests``, if a limit is crossed.

    The statistics are over the canary's last ``window`` requests.
    """

    max_error_rate: Share | None = Field(default=0.05, description="Share of failed requests.")
    max_p95_ms: float | None = Field(default=None, gt=0, description="95th latency percentile.")
    min_metric: float | None = Field(
        default=None, description="Smallest mean labelled reward (feedback) accepted."
    )
    min_requests: int = Field(default=50, ge=1)
    window: int = Field(default=1000, ge=10, le=1_000_000)


class ABTest(_Frozen):
    """The pre-declared A/B test of a canary split: the sequential test
    (:func:`~modelyard.experiments.stats.msprt`) compares the mean reward on the canary
    with the primary's.

    The reward is what clients post for each answered request (``metric: reward``,
    ``POST /v1/models/{name}/reward``), or is scored from the true labels posted to
    ``/v1/feedback`` (``metric: labels``, one observation per labelled row, see
    :func:`label_reward`). With ``act``, the server acts on the decision: a winner is
    promoted (the production alias moves to it and the canary ends), a loser is rolled
    back; both are audited with the test's statistics.
    """

    mde: float = Field(gt=0, description="The minimum detectable difference of mean reward.")
    sigma: float = Field(gt=0, description="The reward's standard deviation per observation.")
    alpha: float = Field(default=0.05, gt=0, lt=1)
    power: float = Field(default=0.8, gt=0, lt=1)
    metric: Literal["reward", "labels"] = Field(
        default="reward",
        description="'reward': posted to /v1/models/{name}/reward; 'labels': true labels "
        "posted to /v1/feedback, scored per row (minus the absolute error of a regressor, "
        "1 or 0 for a classifier's right or wrong class).",
    )
    act: bool = Field(
        default=False,
        description="Promote a winner (move the production alias to it) and roll a loser "
        "back, automatically and audited.",
    )


class CanaryPolicy(_Frozen):
    """A candidate that answers a share of requests instead of the primary (with ``ab``,
    the split of a sequential A/B test)."""

    ref: str
    share: Share
    ab: ABTest | None = None
    sticky: bool = Field(
        default=False, description="Same routing key, same arm (hash of the key header)."
    )
    key_header: str = Field(default="x-routing-key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    rollback: RollbackRule = RollbackRule()


class FallbackPolicy(_Frozen):
    """A version answering when the primary fails or misses its latency budget."""

    ref: str
    budget_ms: float | None = Field(default=None, gt=0, description="The primary's budget.")


class BanditPolicy(_Frozen):
    """Thompson sampling between the primary and ``refs`` on rewards in [0, 1] that
    clients post (``POST /v1/models/{name}/reward``)."""

    refs: list[str] = Field(min_length=1, max_length=8)


class InterleavePolicy(_Frozen):
    """A candidate whose ranking is team-draft interleaved with the primary's on
    ``POST /v1/models/{name}/rank``; clicks posted back credit one of them."""

    ref: str


class CompositePart(_Frozen):
    """One version in a composite, with its weight's name, default and bounds."""

    ref: str
    weight: WeightName
    default: float
    min: float = 0.0
    max: float = 1.0

    @model_validator(mode="after")
    def _bounds(self) -> CompositePart:
        if not self.min <= self.default <= self.max:
            raise ValueError(
                f"weight {self.weight!r}: default {self.default} is outside "
                f"[{self.min}, {self.max}]; pick a default within the bounds"
            )
        return self


class CompositePolicy(_Frozen):
    """The weighted combination of two or more versions' outputs.

    Regression: the weighted sum of the parts' predictions. Classification: the
    weighted mean of their class probabilities (weights normalised to sum to 1), and the
    most probable class.
    """

    parts: list[CompositePart] = Field(min_length=2, max_length=8)

    @model_validator(mode="after")
    def _distinct(self) -> CompositePolicy:
        names = [part.weight for part in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"weight names must differ, got {names}")
        return self

    def weights(self, given: Mapping[str, float]) -> list[float]:
        """The weights of the parts, in order: ``given`` ones, else the defaults.

        Raises:
            DataValidationError: a weight is unknown, not finite, or out of its bounds.
        """
        known = {part.weight for part in self.parts}
        unknown = sorted(set(given) - known)
        if unknown:
            raise DataValidationError(
                f"unknown composite weight {unknown[0]!r}; this composite takes "
                f"{', '.join(sorted(known))}"
            )
        weights = []
        for part in self.parts:
            value = float(given.get(part.weight, part.default))
            if not (np.isfinite(value) and part.min <= value <= part.max):
                raise DataValidationError(
                    f"composite weight {part.weight}={value} is outside its declared bounds "
                    f"[{part.min}, {part.max}]; give a value within them"
                )
            weights.append(value)
        return weights


class RoutingPolicy(_Frozen):
    """Everything that decides which versions take part in a request to one name."""

    shadow: ShadowPolicy | None = None
    canary: CanaryPolicy | None = None
    fallback: FallbackPolicy | None = None
    composite: CompositePolicy | None = None
    bandit: BanditPolicy | None = None
    interleave: InterleavePolicy | None = None

    @model_validator(mode="after")
    def _compatible(self) -> RoutingPolicy:
        choosers = [k for k in ("canary", "composite", "bandit") if getattr(self, k) is not None]
        if len(choosers) > 1:
            raise ValueError(
                f"{' and '.join(choosers)} cannot share one name: each decides who answers "
                "a request; keep one of them"
            )
        return self

    def refs(self) -> dict[str, str]:
        """Every version reference the policy names, by role (``shadow``, ``part:alpha``)."""
        found: dict[str, str] = {}
        for role in ("shadow", "canary", "fallback", "interleave"):
            part = getattr(self, role)
            if part is not None:
                found[role] = part.ref
        if self.bandit is not None:
            for number, ref in enumerate(self.bandit.refs, start=1):
                found[f"bandit:{number}"] = ref
        if self.composite is not None:
            for item in self.composite.parts:
                found[f"part:{item.weight}"] = item.ref
        return found


def parse_policy(data: object) -> RoutingPolicy:
    """A :class:`RoutingPolicy` from JSON data.

    Raises:
        ModelyardError: the data does not describe a policy; the message says where.
    """
    try:
        return RoutingPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'policy'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ModelyardError(
            f"invalid routing policy: {problems}; see `modelyard experiments set --help` "
            "for the fields"
        ) from None


def bucket(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``key`` and ``salt``: the same key lands in the same
    arm while the share stays the same (sticky routing), and keys spread uniformly."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def rollback_reason(
    rule: RollbackRule,
    *,
    requests: int,
    errors: int,
    p95_ms: float | None,
    metric: float | None = None,
) -> str | None:
    """Why the canary must be rolled back under ``rule``, or None while it may stay."""
    if requests < rule.min_requests:
        return None
    error_rate = errors / requests
    if rule.max_error_rate is not None and error_rate > rule.max_error_rate:
        return (
            f"error rate {error_rate:.3f} over {requests} requests crossed the limit "
            f"{rule.max_error_rate}"
        )
    if rule.max_p95_ms is not None and p95_ms is not None and p95_ms > rule.max_p95_ms:
        return f"p95 latency {p95_ms:.1f} ms crossed the limit {rule.max_p95_ms} ms"
    if rule.min_metric is not None and metric is not None and metric < rule.min_metric:
        return f"labelled metric {metric:.4f} fell below the limit {rule.min_metric}"
    return None


def label_reward(task: str, predicted: Any, label: Any) -> float | None:
    """The reward of one prediction given its true ``label`` (higher is better), or
    None when the label cannot score it (a regressor's label that is not a number).

    A regressor's reward is minus its absolute error; a classifier's is 1 when the
    predicted class is the label (compared by their category texts, so ``1`` and
    ``1.0`` are one class) and 0 otherwise.

    Example:
        >>> label_reward("regression", 2.5, 4), label_reward("binary", 1, "1")
        (-1.5, 1.0)
    """
    if task == "regression":
        try:
            error = abs(float(predicted) - float(label))
        except (TypeError, ValueError):
            return None
        return -error if np.isfinite(error) else None
    return float(category_text(predicted) == category_text(label))


def combine(
    weights: Sequence[float],
    values: Sequence[np.ndarray],
    probas: Sequence[np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray | None]:
    """The composite output: (values, probabilities).

    With probabilities (classifiers, same classes in the same order): their weighted
    mean, weights normalised; the caller picks each row's most probable class. Without:
    the weighted sum of ``values``.

    Raises:
        ModelyardError: the parts' outputs do not line up.
    """
    if not len(weights) == len(values) == len(probas) or not weights:
        raise ModelyardError("a composite needs one weight and one output per part")
    if all(proba is not None for proba in probas):
        total = float(sum(weights))
        if total <= 0:
            raise DataValidationError(
                "composite weights of a classifier must not all be 0; give one weight > 0"
            )
        stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probas if p is not None])
        proba = np.tensordot(np.asarray(weights) / total, stacked, axes=1)
        return np.argmax(proba, axis=1), proba
    if any(proba is not None for proba in probas):
        raise ModelyardError("a composite cannot mix classifiers and regressors")
    stacked = np.stack([np.asarray(v, dtype=np.float64) for v in values])
    return np.tensordot(np.asarray(weights, dtype=np.float64), stacked, axes=1), None
