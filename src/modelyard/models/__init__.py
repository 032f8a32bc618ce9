"""Scoring layer: estimators, the fitted features + model pipeline, safe artifacts."""

from modelyard.models.artifacts import dump_pipeline, load_pipeline
from modelyard.models.estimators import (
    LabelEncodedClassifier,
    build_estimator,
    class_path,
    estimator_structure,
)
from modelyard.models.fit import Predictions, build_pipeline, fit_pipeline, predict

__all__ = [
    "LabelEncodedClassifier",
    "Predictions",
    "build_estimator",
    "build_pipeline",
    "class_path",
    "dump_pipeline",
    "estimator_structure",
    "fit_pipeline",
    "load_pipeline",
    "predict",
]
