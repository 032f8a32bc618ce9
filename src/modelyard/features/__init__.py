"""Feature layer: the spec's features as scikit-learn transformers, versioned by hash."""

from modelyard.features.build import (
    FeaturePlan,
    build_preprocessor,
    feature_definition_hash,
    load_object,
    plan_features,
    project_on_path,
)
from modelyard.features.transformers import (
    Cross,
    DateParts,
    FrameCoercer,
    Log1pTransformer,
    Ratio,
    category_values,
)

__all__ = [
    "Cross",
    "DateParts",
    "FeaturePlan",
    "FrameCoercer",
    "Log1pTransformer",
    "Ratio",
    "build_preprocessor",
    "category_values",
    "feature_definition_hash",
    "load_object",
    "plan_features",
    "project_on_path",
]
