"""Stateful training: continue from a fitted pipeline instead of starting from scratch.

A retrained model can start from the production model and learn only what the new
rows add. The feature step of the production pipeline is kept as it was fitted (the
estimator's inputs must mean what they meant), and the estimator continues:

- scikit-learn gradient boosting with ``max_iter`` (``HistGradientBoosting*``): warm
  start with ``max_iter`` raised by the spec's number, so new trees are added;
- scikit-learn ensembles with ``n_estimators`` (forests, ``GradientBoosting*``,
  bagging): warm start with ``n_estimators`` raised the same way;
- other scikit-learn estimators with ``warm_start`` (linear models, SGD, MLP): warm
  start, so the solver starts from the fitted coefficients;
- LightGBM: ``fit(init_model=booster)``; XGBoost: ``fit(xgb_model=booster)``.

Anything else (no such parameter, XGBoost's label wrapper, new classes in the target)
is not continued: :func:`continue_fit` says why, and the caller trains from scratch.
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.pipeline import Pipeline

from modelyard.models.estimators import LabelEncodedClassifier
from modelyard.spec import ProjectSpec

__all__ = ["Continuation", "continuation_method", "continue_fit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Continuation:
    """The result of :func:`continue_fit`: a fitted pipeline, or none and the reason."""

    pipeline: Pipeline | None
    method: str
    reason: str

    @property
    def continued(self) -> bool:
        """Whether the pipeline continued from the given one."""
        return self.pipeline is not None


def continuation_method(estimator: Any) -> tuple[str, str]:
    """How ``estimator`` (fitted) can continue training: ``(method, reason)``; method
    ``none`` when it cannot.

    Example:
        >>> from sklearn.linear_model import Ridge
        >>> continuation_method(Ridge())[0]
        'none'
    """
    kind = type(estimator).__name__
    module = type(estimator).__module__.split(".")[0]
    if isinstance(estimator, LabelEncodedClassifier):
        return "none", f"{kind} re-encodes the labels at every fit, so it cannot continue"
    if module == "lightgbm":
        return "init_model", f"LightGBM {kind} continues from the production booster"
    if module == "xgboost":
        return "xgb_model", f"XGBoost {kind} continues from the production booster"
    params = estimator.get_params(deep=False)
    if "warm_start" not in params:
        return "none", f"{kind} has no warm_start and no initial-model option"
    if kind.startswith("HistGradientBoosting"):
        return "warm_start", f"{kind} adds up to max_iter={params['max_iter']} trees (warm start)"
    if "n_estimators" in params:
        return "warm_start", f"{kind} adds n_estimators={params['n_estimators']} (warm start)"
    return "warm_start", f"{kind} starts its solver from the production coefficients"


def continue_fit(
    production: Pipeline, X: pd.DataFrame, y: pd.Series[Any], *, spec: ProjectSpec
) -> Continuation:
    """Continue fitting a copy of ``production`` on ``X``/``y`` (``production`` is left
    as it is).

    The feature step is kept as fitted; only the estimator learns from the new rows.
    Seeds are set as :func:`~modelyard.models.fit.fit_pipeline` sets them.

    Returns:
        The continued pipeline with the method, or no pipeline and the reason why the
        estimator cannot continue (the caller then trains from scratch).
    """
    name, estimator = production.steps[-1]
    method, reason = continuation_method(estimator)
    if method == "none":
        return Continuation(None, method, reason)
    if spec.model.class_weight is not None and "class_weight" not in estimator.get_params():
        return Continuation(None, "none", "class weights given as sample weights are not continued")
    if is_classifier(estimator):
        known = {str(c) for c in np.asarray(estimator.classes_).tolist()}
        seen = {str(c) for c in pd.unique(y)}
        if not seen <= known:
            new = ", ".join(sorted(seen - known))
            return Continuation(None, "none", f"the target has classes the model never saw: {new}")
    pipeline = copy.deepcopy(production)
    features = pipeline[:-1].transform(X)
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    if method == "init_model":
        model = clone(estimator).fit(features, y, init_model=estimator.booster_)
    elif method == "xgb_model":
        model = clone(estimator).fit(features, y, xgb_model=estimator.get_booster())
    else:
        model = pipeline.steps[-1][1]
        _grow(model)
        try:
            model.fit(features, y)
        except ValueError as exc:  # e.g. a solver refusing the earlier state's shape
            return Continuation(None, "none", f"the warm start failed: {exc}")
        model.set_params(warm_start=False)
    pipeline.steps[-1] = (name, model)
    logger.info("continued %s by %s", type(estimator).__name__, method)
    return Continuation(pipeline, method, reason)


def _grow(model: Any) -> None:
    """Turn on warm start, with room for new trees where the model counts them."""
    params = model.get_params(deep=False)
    update: dict[str, Any] = {"warm_start": True}
    if type(model).__name__.startswith("HistGradientBoosting"):
        # n_iter_ trees exist (early stopping may have stopped short of max_iter).
        update["max_iter"] = int(model.n_iter_) + int(params["max_iter"])
    elif "n_estimators" in params:
        update["n_estimators"] = len(model.estimators_) + int(params["n_estimators"])
    model.set_params(**update)
