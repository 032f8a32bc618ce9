"""The project spec: one ``modelyard.yaml`` validated by frozen pydantic models.

A bad spec stops with one :class:`~modelyard.errors.SpecError` whose lines name the
file, the line, the dotted key, what was found and what is expected::

    modelyard.yaml:14 split.test_sise: unknown key; did you mean 'test_size'?

Example:
    >>> spec = ProjectSpec.model_validate({
    ...     "name": "churn", "task": "binary", "target": "churned",
    ...     "data": {"source": {"path": "data.csv"}},
    ...     "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
    ... })
    >>> spec.evaluation.resolved_metrics("binary")[:2]
    ['roc_auc', 'accuracy']
"""

from __future__ import annotations

from modelyard.spec._base import CLASSIFICATION_METRICS, REGRESSION_METRICS, SPEC_FILENAME, Task
from modelyard.spec.data import ColumnSpec, DataSpec, SourceSpec, SplitSpec
from modelyard.spec.evaluation import EvaluationSpec, GateSpec
from modelyard.spec.features import (
    BinTransform,
    CrossTransform,
    CustomTransform,
    DatePartsTransform,
    EncodeSpec,
    FeaturesSpec,
    ImputeSpec,
    LogTransform,
    PowerTransform,
    RatioTransform,
    Transform,
    WindowSpec,
)
from modelyard.spec.loading import LoadedSpec, load_spec, parse_spec, spec_digest, spec_to_dict
from modelyard.spec.model import EstimatorSpec, ModelSpec, NamedEstimatorSpec, ThresholdRuleSpec
from modelyard.spec.project import ProjectSpec
from modelyard.spec.retrain import RetrainSpec, RetrainThreshold

__all__ = [
    "BinTransform",
    "CLASSIFICATION_METRICS",
    "ColumnSpec",
    "CrossTransform",
    "CustomTransform",
    "DataSpec",
    "DatePartsTransform",
    "EncodeSpec",
    "EstimatorSpec",
    "EvaluationSpec",
    "FeaturesSpec",
    "GateSpec",
    "ImputeSpec",
    "load_spec",
    "LoadedSpec",
    "LogTransform",
    "ModelSpec",
    "NamedEstimatorSpec",
    "parse_spec",
    "PowerTransform",
    "ProjectSpec",
    "RatioTransform",
    "REGRESSION_METRICS",
    "RetrainSpec",
    "RetrainThreshold",
    "SourceSpec",
    "spec_digest",
    "SPEC_FILENAME",
    "spec_to_dict",
    "SplitSpec",
    "Task",
    "ThresholdRuleSpec",
    "Transform",
    "WindowSpec",
]
