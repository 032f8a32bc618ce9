"""The whole project spec (``modelyard.yaml``): :class:`ProjectSpec`."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from modelyard.spec._base import (
    _AT,
    _BINARY_ONLY,
    _NAME_RE,
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Task,
    _Frozen,
)
from modelyard.spec.data import DataSpec, SplitSpec
from modelyard.spec.evaluation import EvaluationSpec
from modelyard.spec.features import FeaturesSpec
from modelyard.spec.model import EstimatorSpec, ModelSpec, NamedEstimatorSpec
from modelyard.spec.retrain import RetrainSpec

__all__ = ["ProjectSpec"]


class ProjectSpec(_Frozen):
    """The whole project: data, split, features, model, evaluation, seed.

    ``positive_class`` names the class of a binary target that f1, precision, recall,
    ROC AUC and brier are about (default: the second in sorted order).
    """

    name: str
    task: Task
    target: str
    positive_class: str | bool | int | float | None = None
    seed: int = 42
    description: str = ""
    data: DataSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    model: ModelSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "expected letters, digits, '.', '_' or '-' (starting with a letter or digit), "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProjectSpec:
        features = self.features
        if self.target in features.drop:
            raise ValueError(f"the target {self.target!r} is listed in features.drop")
        for group in (features.numeric, features.categorical):
            if isinstance(group, list) and self.target in group:
                raise ValueError(f"the target {self.target!r} cannot also be a feature")
        if (
            self.split.method == "time"
            and self.split.column is None
            and self.data.timestamp_column is None
        ):
            raise ValueError("a 'time' split needs split.column or data.timestamp_column")
        if features.windows and self.data.timestamp_column is None:
            raise ValueError(
                "features.windows need data.timestamp_column: a window looks back from "
                "each row's time"
            )
        known = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        if self.task == "multiclass":
            known = {name: up for name, up in known.items() if name not in _BINARY_ONLY}
        metrics = self.evaluation.resolved_metrics(self.task)
        named = [
            (f"evaluation.metrics.{i}", m) for i, m in enumerate(self.evaluation.metrics or [])
        ]
        named += [
            (f"evaluation.gates.{i}.metric", g.metric) for i, g in enumerate(self.evaluation.gates)
        ]
        named += [
            (f"retrain.performance.{i}.metric", t.metric)
            for i, t in enumerate(self.retrain.performance)
        ]
        for key, metric in named:
            if metric not in known:
                binary = " (it is for binary tasks)" if metric in _BINARY_ONLY else ""
                raise ValueError(
                    f"{_AT}{key}: metric {metric!r} does not apply to task {self.task!r}"
                    f"{binary}; expected one of {', '.join(sorted(known))}"
                )
        primary = self.evaluation.primary_metric
        if primary is not None and primary not in metrics:
            raise ValueError(f"primary_metric {primary!r} is not among the metrics {metrics}")
        if self.model.class_weight is not None and self.task == "regression":
            raise ValueError("model.class_weight applies to classification tasks only")
        if self.positive_class is not None and self.task != "binary":
            raise ValueError("positive_class applies to binary tasks only; remove it")
        if self.model.decision_threshold is not None and self.task != "binary":
            raise ValueError(
                f"{_AT}model.decision_threshold: a decision threshold applies to binary "
                "tasks only; remove it"
            )
        serving = set(self.data.not_at_serving())
        for kind, group in (
            ("numeric", self.features.numeric),
            ("categorical", self.features.categorical),
        ):
            used = sorted(serving & set(group)) if isinstance(group, list) else []
            if used:
                raise ValueError(
                    f"{_AT}features.{kind}: {', '.join(map(repr, used))} is marked "
                    "serving: false in data.columns (not available when the model is used), "
                    "so it cannot be a feature; remove it from the feature list"
                )
        return self

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of ``metric`` is better."""
        table = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        return table[metric]


EstimatorSpec.model_rebuild()
NamedEstimatorSpec.model_rebuild()
ModelSpec.model_rebuild()
