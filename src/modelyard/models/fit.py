"""Fit the one pipeline (features + estimator) and predict with it.

The fitted :class:`~sklearn.pipeline.Pipeline` is the single object a model version
is made of: it transforms and predicts at training time and at serving time alike.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import has_fit_parameter

from modelyard.errors import DataError, SpecError
from modelyard.features.build import FeaturePlan, build_preprocessor
from modelyard.features.transformers import category_values
from modelyard.models.estimators import LabelEncodedClassifier, build_estimator
from modelyard.spec import ProjectSpec

__all__ = ["Predictions", "build_pipeline", "fit_pipeline", "predict"]

logger = logging.getLogger(__name__)


@dataclass
class Predictions:
    """What a pipeline predicts for a batch of rows.

    Attributes:
        values: regression values, or the predicted class labels.
        proba: class probabilities (rows x classes), for classifiers that give them.
        classes: the class labels, in the order of ``proba``'s columns.
    """

    values: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None = None
    classes: list[Any] | None = None


def build_pipeline(
    spec: ProjectSpec, plan: FeaturePlan, *, project_dir: Path | None = None
) -> Pipeline:
    """The unfitted ``Pipeline([("features", preprocessor), ("model", estimator)])``.

    Raises:
        SpecError: a custom transformer or the estimator cannot be built.
        MissingExtraError: an optional library the spec names is not installed.
    """
    features = build_preprocessor(spec, plan, project_dir=project_dir)
    model = build_estimator(spec.model, task=spec.task, seed=spec.seed)
    return Pipeline([("features", features), ("model", model)])


def fit_pipeline(
    pipeline: Pipeline, X: pd.DataFrame, y: pd.Series[Any], *, spec: ProjectSpec
) -> Pipeline:
    """Fit ``pipeline`` on ``X``/``y`` with every seed set; returns the fitted pipeline.

    ``random`` and ``numpy.random`` are seeded with ``spec.seed`` first (estimators get
    it as ``random_state`` from :func:`build_estimator`). ``spec.model.class_weight``
    is set on the estimator if it takes ``class_weight``, else passed as per-row
    ``sample_weight``. An XGBoost classifier whose labels are not 0..k-1 is wrapped
    in :class:`LabelEncodedClassifier`, so any labels work.

    Raises:
        DataError: the target has missing values, or is not numeric for regression.
        SpecError: ``model.class_weight`` names an unknown class, or the estimator
            takes neither ``class_weight`` nor ``sample_weight``.
    """
    _check_target(y, spec)
    if spec.task != "regression" and _needs_label_encoding(pipeline.steps[-1][1], y):
        name, estimator = pipeline.steps[-1]
        logger.info("wrapping %s to encode labels as 0..k-1", type(estimator).__name__)
        pipeline.steps[-1] = (name, LabelEncodedClassifier(estimator=estimator))
    fit_params: dict[str, Any] = {}
    if spec.model.class_weight is not None:
        fit_params = _apply_class_weight(pipeline, y, spec)
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    return pipeline.fit(X, y, **fit_params)


def _check_target(y: pd.Series[Any], spec: ProjectSpec) -> None:
    missing = int(y.isna().sum())
    if missing:
        raise DataError(
            f"the target {spec.target!r} has {missing} missing value(s); drop those rows "
            "before training"
        )
    if spec.task == "regression" and not pd.api.types.is_numeric_dtype(y.dtype):
        raise DataError(
            f"the target {spec.target!r} of a regression must be numeric, found dtype "
            f"{y.dtype}; use task 'binary' or 'multiclass' for labels"
        )


def _needs_label_encoding(estimator: Any, y: pd.Series[Any]) -> bool:
    if type(estimator).__module__.split(".")[0] != "xgboost":
        return False
    labels = np.unique(np.asarray(y))
    if not pd.api.types.is_numeric_dtype(labels.dtype):
        return True
    return not np.array_equal(labels, np.arange(len(labels)))


def _apply_class_weight(pipeline: Pipeline, y: pd.Series[Any], spec: ProjectSpec) -> dict[str, Any]:
    """Set class weights on the estimator, or return them as ``model__sample_weight``."""
    wanted = spec.model.class_weight
    weights: str | dict[Any, float]
    if isinstance(wanted, dict):
        labels = np.unique(np.asarray(y))
        # Spec keys are text; map each to the label it spells (20.0 and "20" spell "20").
        by_text = dict(zip(category_values(list(labels)).tolist(), labels.tolist(), strict=True))
        unknown = [key for key in wanted if key not in by_text]
        if unknown:
            raise SpecError(
                f"model.class_weight: {unknown[0]!r} is not a class of the target "
                f"{spec.target!r}; its classes are {sorted(by_text)}"
            )
        weights = {by_text[key]: float(value) for key, value in wanted.items()}
    else:
        weights = "balanced"
    name, estimator = pipeline.steps[-1]
    if "class_weight" in estimator.get_params(deep=False):
        estimator.set_params(class_weight=weights)
        return {}
    if not has_fit_parameter(estimator, "sample_weight"):
        raise SpecError(
            f"model.class_weight: {type(estimator).__name__} takes neither class_weight nor "
            "sample_weight; remove model.class_weight or pick another estimator"
        )
    return {f"{name}__sample_weight": compute_sample_weight(weights, np.asarray(y))}


def predict(pipeline: Pipeline, X: pd.DataFrame) -> Predictions:
    """Predict with a fitted pipeline; classifiers also give probabilities.

    The features are computed once and shared by ``predict`` and ``predict_proba``.
    Repeated calls give bit-identical results for every estimator modelyard tests,
    except forests with ``n_jobs`` > 1: they add up tree outputs in thread order, which
    can change the last bits.
    """
    model = pipeline.steps[-1][1]
    features = pipeline[:-1].transform(X)
    values = np.asarray(model.predict(features))
    if not is_classifier(model):
        return Predictions(values=values)
    proba = np.asarray(model.predict_proba(features)) if hasattr(model, "predict_proba") else None
    return Predictions(values=values, proba=proba, classes=np.asarray(model.classes_).tolist())
