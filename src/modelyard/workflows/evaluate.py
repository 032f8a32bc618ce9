"""Evaluate a fitted pipeline on labelled rows: metrics, baseline, slices, gates, and the
differential test against the version in production.

This module joins the evaluation layer (pure functions) to fitted pipelines and the
registry; it reads nothing from disk itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelyard.errors import DataValidationError
from modelyard.evaluation.charts import chart_data, permutation_importance
from modelyard.evaluation.diff import PredictionDiff, diff_predictions
from modelyard.evaluation.gates import check_gates
from modelyard.evaluation.metrics import baseline_predictions, compute_metrics
from modelyard.evaluation.report import (
    EvaluationReport,
    ProductionComparison,
    ThresholdSummary,
    class_summary,
)
from modelyard.evaluation.slices import SliceResult, slice_metrics
from modelyard.models.fit import Predictions, predict

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from modelyard.registry.lineage import Lineage
    from modelyard.spec import ProjectSpec

__all__ = ["Reference", "evaluate_rows", "lineage_summary", "slice_columns"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """A version to compare against (usually the one in production)."""

    ref: str
    pipeline: Pipeline


def slice_columns(spec: ProjectSpec) -> list[str]:
    """Columns to slice by: the spec's slices plus any column a gate is sliced on."""
    columns = list(spec.evaluation.slices)
    for gate in spec.evaluation.gates:
        if gate.slice is not None and gate.slice not in columns:
            columns.append(gate.slice)
    return columns


def evaluate_rows(
    spec: ProjectSpec,
    *,
    model: str,
    version: int | None,
    rows: pd.DataFrame,
    predictions: Predictions,
    y_train: pd.Series,
    reference: Reference | None = None,
    id_columns: list[str] | None = None,
    threshold: dict[str, Any] | None = None,
    pipeline: Any = None,
    feature_columns: list[str] | None = None,
) -> EvaluationReport:
    """Metrics, baseline, slices and gates for ``predictions`` on labelled ``rows``.

    Args:
        spec: the project spec (task, metrics, slices, gates, seed).
        model: the model name, for the report.
        version: the version number, when already known.
        rows: the evaluation rows, target included.
        predictions: the candidate's predictions on ``rows``.
        y_train: the training target, to fit the dummy baseline.
        reference: the version in production, to compute regression gates and the diff.
        id_columns: columns that identify rows in the diff's top changes.
        threshold: the decision threshold of a binary classifier, as its lineage
            records it (``value``, ``positive_class``, ``rule``, ``detail``).
        pipeline: the candidate's fitted pipeline, for the permutation importance of
            ``feature_columns`` (none without it, or with ``importance_repeats: 0``).
        feature_columns: the pipeline's input columns.
    """
    task = spec.task
    metrics_wanted = list(
        dict.fromkeys(
            [*spec.evaluation.resolved_metrics(task), *(g.metric for g in spec.evaluation.gates)]
        )
    )
    y_true = rows[spec.target].to_numpy()
    positive = spec.positive_class
    metrics = compute_metrics(
        task,
        metrics_wanted,
        y_true,
        predictions.values,
        predictions.proba,
        predictions.classes,
        positive=positive,
    )
    base_values, base_proba, base_classes = baseline_predictions(
        task, y_train.to_numpy(), len(rows), seed=spec.seed
    )
    baseline = compute_metrics(
        task, metrics_wanted, y_true, base_values, base_proba, base_classes, positive=positive
    )
    slices = _slices(spec, rows, y_true, predictions, metrics_wanted)
    baseline_slices = _slices(
        spec, rows, y_true, Predictions(base_values, base_proba, base_classes), metrics_wanted
    )

    production: ProductionComparison | None = None
    production_slices: list[SliceResult] | None = None
    diff: PredictionDiff | None = None
    if reference is not None:
        try:
            old = predict(reference.pipeline, rows)
        except DataValidationError as exc:
            logger.warning("cannot compare with %s on these rows: %s", reference.ref, exc)
        else:
            prod_metrics = compute_metrics(
                task, metrics_wanted, y_true, old.values, old.proba, old.classes, positive=positive
            )
            production = ProductionComparison(ref=reference.ref, metrics=prod_metrics)
            production_slices = _slices(spec, rows, y_true, old, metrics_wanted)
            ids = rows[id_columns].reset_index(drop=True) if id_columns else None
            diff = diff_predictions(
                old.values,
                predictions.values,
                task=task,
                atol=spec.evaluation.diff_tolerance,
                ids=ids,
                old_proba=old.proba if _same_classes(old, predictions) else None,
                new_proba=predictions.proba if _same_classes(old, predictions) else None,
                top=spec.evaluation.top_changes,
            )
    gates = check_gates(
        list(spec.evaluation.gates),
        metrics=metrics,
        baseline=baseline,
        slices=slices,
        production=production.metrics if production else None,
        production_slices=production_slices,
        baseline_slices=baseline_slices,
        higher_is_better=spec.higher_is_better,
    )
    charts = chart_data(
        task,
        y_true,
        predictions.values,
        predictions.proba,
        predictions.classes,
        positive=positive,
        threshold=threshold["value"] if threshold else None,
        seed=spec.seed,
    )
    repeats = spec.evaluation.importance_repeats
    if pipeline is not None and feature_columns and repeats and len(rows):
        primary = spec.evaluation.resolved_primary(task)
        importance = permutation_importance(
            pipeline,
            rows[feature_columns],
            y_true,
            task=task,
            metric=primary,
            higher_is_better=spec.higher_is_better(primary),
            positive=positive,
            repeats=repeats,
            seed=spec.seed,
        )
        charts = charts.model_copy(update={"importance": importance})
    return EvaluationReport(
        charts=charts,
        model=model,
        version=version,
        task=task,
        rows=len(rows),
        primary_metric=spec.evaluation.resolved_primary(task),
        metrics=metrics,
        baseline_metrics=baseline,
        slices=slices,
        gates=gates,
        passed=all(g.passed for g in gates),
        production=production,
        diff=diff,
        created_at=datetime.now(UTC),
        decision_threshold=_threshold_summary(threshold),
        **class_summary(spec, y_train, predictions.classes),
    )


def _threshold_summary(threshold: dict[str, Any] | None) -> ThresholdSummary | None:
    if threshold is None:
        return None
    fields = ("value", "positive_class", "rule", "detail")
    return ThresholdSummary.model_validate(
        {key: threshold[key] for key in fields if key in threshold}
    )


def _slices(
    spec: ProjectSpec,
    rows: pd.DataFrame,
    y_true: np.ndarray,
    predictions: Predictions,
    metrics: list[str],
) -> list[SliceResult]:
    results: list[SliceResult] = []
    for column in slice_columns(spec):
        if column not in rows.columns:
            continue
        results.extend(
            slice_metrics(
                rows[column].reset_index(drop=True),
                task=spec.task,
                metrics=metrics,
                y_true=y_true,
                y_pred=predictions.values,
                proba=predictions.proba,
                classes=predictions.classes,
                positive=spec.positive_class,
            )
        )
    return results


def _same_classes(a: Predictions, b: Predictions) -> bool:
    return (
        a.proba is not None
        and b.proba is not None
        and list(a.classes or []) == list(b.classes or [])
    )


def lineage_summary(lineage: Lineage) -> dict[str, str]:
    """What a version was built from, in words, for the report."""
    data, code = lineage.data, lineage.code
    source = data.source.get("path") or data.source.get("url") or data.source.get("query")
    commit = code.get("commit")
    summary = {
        "data": f"{source or '?'}, snapshot {str(data.snapshot_digest or '?')[:12]}",
        "rows": f"{data.rows or 0:,} ({data.train_rows or 0:,} training, "
        f"{data.eval_rows or 0:,} evaluation)",
        "features": f"{len(lineage.features.feature_order)} input columns, definition "
        f"{str(lineage.features.definition_hash or '?')[:12]}",
        "estimator": str(lineage.model.estimator),
        "seed": str(lineage.seed),
        "code": f"{str(commit)[:12]}{' (dirty)' if code.get('dirty') else ''}"
        if commit
        else "not in a git checkout",
        "spec": str(lineage.spec_digest or "?")[:12],
        "prediction fingerprint": str(lineage.predictions.fingerprint or "?")[:12],
    }
    threshold = lineage.model.decision_threshold
    if threshold:
        summary["decision threshold"] = f"{threshold['value']:.4g} ({threshold['rule']})"
    return summary
