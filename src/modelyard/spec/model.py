"""The spec's ``model`` section: the estimator, its parameters and the decision threshold."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modelyard.spec._base import _IMPORT_PATH_RE, _Frozen

__all__ = ["EstimatorSpec", "ModelSpec", "NamedEstimatorSpec"]


class EstimatorSpec(_Frozen):
    """An estimator by import path, its hyperparameters, and for ensembles its members."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    estimators: list[NamedEstimatorSpec] = Field(default_factory=list)
    final_estimator: EstimatorSpec | None = None

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH_RE.match(value):
            raise ValueError(
                "expected an import path like 'sklearn.ensemble.HistGradientBoostingRegressor', "
                f"got {value!r}"
            )
        return value


class NamedEstimatorSpec(EstimatorSpec):
    """A member of an ensemble (stacking or voting)."""

    name: str


class ThresholdRuleSpec(_Frozen):
    """How a binary classifier's decision threshold is chosen on validation rows.

    The validation rows are ``validation_fraction`` of the training rows (stratified,
    seeded); the evaluation rows are never used. ``rule``:

    - ``f1``: the threshold of highest F1 for the positive class;
    - ``cost``: the lowest ``false_positive_cost`` x FP + ``false_negative_cost`` x FN;
    - ``recall``: the highest precision whose recall is at least ``target_recall``.
    """

    rule: Literal["f1", "cost", "recall"]
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    false_positive_cost: float | None = Field(None, gt=0)
    false_negative_cost: float | None = Field(None, gt=0)
    target_recall: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _options_fit_rule(self) -> ThresholdRuleSpec:
        costs = (self.false_positive_cost, self.false_negative_cost)
        if self.rule == "cost" and None in costs:
            raise ValueError(
                "rule 'cost' needs false_positive_cost and false_negative_cost "
                "(e.g. 1 and 5 when a missed positive costs five false alarms)"
            )
        if self.rule != "cost" and costs != (None, None):
            raise ValueError(f"false_*_cost applies to rule 'cost', not {self.rule!r}")
        if self.rule == "recall" and self.target_recall is None:
            raise ValueError("rule 'recall' needs target_recall (e.g. 0.9)")
        if self.rule != "recall" and self.target_recall is not None:
            raise ValueError(f"target_recall applies to rule 'recall', not {self.rule!r}")
        return self


class ModelSpec(EstimatorSpec):
    """The estimator to fit; ``class_weight`` re-weights imbalanced classes;
    ``decision_threshold`` (binary tasks) is the positive class's probability from which
    a row is labelled positive: a number, or a :class:`ThresholdRuleSpec` that chooses it
    on validation rows."""

    class_weight: Literal["balanced"] | dict[str, float] | None = None
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] | ThresholdRuleSpec | None = None
