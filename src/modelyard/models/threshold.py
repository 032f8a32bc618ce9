"""The decision threshold of a binary classifier: fixed, or chosen on validation rows.

A fitted pipeline whose spec sets ``model.decision_threshold`` ends in scikit-learn's
:class:`~sklearn.model_selection.FixedThresholdClassifier` around the fitted estimator:
``predict`` labels a row positive when the positive class's probability is at least the
threshold, ``predict_proba`` is the estimator's own. Every runtime reads the threshold
from that step (:func:`threshold_of`), so the reference pipeline, ONNX Runtime, the
server, batch jobs and the edge exports label rows alike.

A threshold chosen by a rule (``f1``, ``cost``, ``recall``) is chosen by scikit-learn's
:class:`~sklearn.model_selection.TunedThresholdClassifierCV` with one stratified, seeded
split of the *training* rows: a clone of the estimator is fitted on the rest and scored
at 200 thresholds on the validation rows. The evaluation rows are never seen. The
pipeline's estimator itself stays the one fitted on every training row; the feature
steps were fitted on every training row too (as for early stopping's validation split).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import confusion_matrix, f1_score, make_scorer, precision_score, recall_score
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

from modelyard.errors import DataError, SpecError
from modelyard.spec import ProjectSpec, ThresholdRuleSpec
from modelyard.types import DecisionThreshold

__all__ = ["ThresholdChoice", "apply_threshold", "threshold_of", "unwrap_threshold"]

#: Thresholds scored on the validation rows, evenly spaced over the probabilities seen.
_GRID = 200


@dataclass(frozen=True)
class ThresholdChoice:
    """The decision threshold of a version, as its lineage and report record it.

    Attributes:
        value: the threshold on the positive class's probability.
        positive_class: the class a probability at or above ``value`` predicts.
        rule: ``fixed``, or the rule that chose it (``f1``, ``cost``, ``recall``).
        validation_rows: how many training rows it was chosen on (None when fixed).
        validation_score: the rule's score there (F1, minus the cost per row, or the
            precision at the target recall).
        detail: the rule in words.
    """

    value: float
    positive_class: str
    rule: str
    validation_rows: int | None = None
    validation_score: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON data for the lineage."""
        return asdict(self)


def threshold_of(model: Any) -> DecisionThreshold | None:
    """The decision threshold of a fitted model step; None without one."""
    if isinstance(model, FixedThresholdClassifier) and model.threshold != "auto":
        return DecisionThreshold(float(model.threshold), model.pos_label)
    return None


def unwrap_threshold(model: Any) -> Any:
    """The fitted estimator inside a threshold step (``model`` itself otherwise)."""
    if isinstance(model, FixedThresholdClassifier):
        return getattr(model, "estimator_", model.estimator)
    return model


def apply_threshold(pipeline: Any, X: Any, y: Any, *, spec: ProjectSpec) -> ThresholdChoice | None:
    """Put the spec's decision threshold on a fitted pipeline (in place).

    Args:
        pipeline: the fitted pipeline; its last step is replaced by a
            :class:`FixedThresholdClassifier` around the fitted estimator.
        X: the training rows the pipeline was fitted on.
        y: their target.
        spec: the project spec (``model.decision_threshold``, ``positive_class``, seed).

    Returns:
        The threshold and how it was chosen; None when the spec sets none.

    Raises:
        SpecError: the estimator gives no probabilities, or takes class weights only as
            sample weights (which the validation fit cannot receive).
        DataError: the validation rows hold one class only, or the estimator predicts
            the same probability for all of them.
    """
    wanted = spec.model.decision_threshold
    if wanted is None:
        return None
    name, estimator = pipeline.steps[-1]
    if not hasattr(estimator, "predict_proba"):
        raise SpecError(
            f"model.decision_threshold: {type(estimator).__name__} gives no class "
            "probabilities to put a threshold on; remove it or pick another estimator"
        )
    classes = list(np.asarray(estimator.classes_).tolist())
    positive = _positive_label(classes, spec.positive_class)
    if isinstance(wanted, ThresholdRuleSpec):
        choice = _choose(pipeline, X, y, rule=wanted, spec=spec, positive=positive)
    else:
        choice = ThresholdChoice(
            value=float(wanted),
            positive_class=str(positive),
            rule="fixed",
            detail="set in the spec",
        )
    wrapper = FixedThresholdClassifier(
        estimator=clone(estimator),
        threshold=choice.value,
        pos_label=positive,
        response_method="predict_proba",
    )
    # The state ``fit`` leaves (an unfitted template, the fitted ``estimator_``), set by
    # hand: fitting again would cost a second fit, and wrapping the fitted estimator in
    # FrozenEstimator makes skops store it twice.
    wrapper.estimator_ = estimator
    pipeline.steps[-1] = (name, wrapper)
    return choice


def _positive_label(classes: list[Any], wanted: Any) -> Any:
    if wanted is None:
        return classes[1]
    for label in classes:
        if label == wanted or str(label).lower() == str(wanted).lower():
            return label
    raise SpecError(
        f"positive_class {wanted!r} is not a class of the target; its classes are {classes}"
    )


def _choose(
    pipeline: Any, X: Any, y: Any, *, rule: ThresholdRuleSpec, spec: ProjectSpec, positive: Any
) -> ThresholdChoice:
    estimator = pipeline.steps[-1][1]
    if spec.model.class_weight is not None and "class_weight" not in estimator.get_params(
        deep=False
    ):
        raise SpecError(
            f"model.decision_threshold: {type(estimator).__name__} takes class weights only as "
            "sample weights, which the validation fit of a chosen threshold cannot pass on; "
            "give a fixed threshold, drop model.class_weight, or pick an estimator with "
            "class_weight"
        )
    features = pipeline[:-1].transform(X)
    target = np.asarray(y)
    tuner = TunedThresholdClassifierCV(
        clone(estimator),
        scoring=_scorer(rule, positive),
        response_method="predict_proba",
        thresholds=_GRID,
        cv=rule.validation_fraction,
        refit=False,
        random_state=spec.seed,
    )
    try:
        tuner.fit(features, target)
    except ValueError as exc:
        raise DataError(
            f"cannot choose a decision threshold by rule {rule.rule!r} on "
            f"{rule.validation_fraction:.0%} of the training rows: {exc}; give a fixed "
            "model.decision_threshold or more training rows"
        ) from exc
    score = float(tuner.best_score_)
    if rule.rule == "recall" and score < 0:
        raise DataError(
            f"no decision threshold reaches recall {rule.target_recall} on the validation "
            "rows; lower target_recall or give a fixed model.decision_threshold"
        )
    validation_rows = math.ceil(rule.validation_fraction * len(target))
    return ThresholdChoice(
        value=float(tuner.best_threshold_),
        positive_class=str(positive),
        rule=rule.rule,
        validation_rows=validation_rows,
        validation_score=score,
        detail=_describe(rule, validation_rows),
    )


def _describe(rule: ThresholdRuleSpec, rows: int) -> str:
    where = f"on {rows:,} validation rows carved from the training rows"
    if rule.rule == "f1":
        return f"highest F1 {where}"
    if rule.rule == "cost":
        return (
            f"lowest cost {rule.false_positive_cost:g} x FP + {rule.false_negative_cost:g} x FN "
            f"{where}"
        )
    return f"highest precision with recall >= {rule.target_recall:g} {where}"


def _scorer(rule: ThresholdRuleSpec, positive: Any) -> Any:
    # ``pos_label`` by that name: TunedThresholdClassifierCV reads it from the scorer
    # to know which class's probability the thresholds are on.
    if rule.rule == "f1":
        return make_scorer(f1_score, pos_label=positive, zero_division=0.0)
    if rule.rule == "cost":
        return make_scorer(
            _negative_cost,
            pos_label=positive,
            fp_cost=rule.false_positive_cost,
            fn_cost=rule.false_negative_cost,
        )
    return make_scorer(_precision_at_recall, pos_label=positive, target=rule.target_recall)


def _negative_cost(
    y_true: np.ndarray[Any, Any],
    y_pred: np.ndarray[Any, Any],
    *,
    pos_label: Any,
    fp_cost: float,
    fn_cost: float,
) -> float:
    """Minus the mean cost per row (a scorer maximises)."""
    truth, predicted = np.asarray(y_true) == pos_label, np.asarray(y_pred) == pos_label
    matrix = confusion_matrix(truth, predicted, labels=[False, True])
    false_positives, false_negatives = matrix[0, 1], matrix[1, 0]
    return -float(fp_cost * false_positives + fn_cost * false_negatives) / max(len(truth), 1)


def _precision_at_recall(
    y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], *, pos_label: Any, target: float
) -> float:
    """Precision where recall reaches ``target``, else -1 (never the best)."""
    recall = recall_score(y_true, y_pred, pos_label=pos_label, zero_division=0.0)
    if recall < target:
        return -1.0
    return float(precision_score(y_true, y_pred, pos_label=pos_label, zero_division=0.0))
