"""Versions derived from another version: pruned ensembles and distilled students.

A derived version is registered like a trained one (its pipeline, the parent's frozen
snapshot, its evaluation rows and predictions, its ONNX export with parity), evaluated
against the spec's gates with the parent as the reference of the differential test,
and its lineage names the parent (``lineage.derived``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.registry.lineage import (
    DerivedLineage,
    Lineage,
    ModelLineage,
    OnnxLineage,
    PredictionsLineage,
    predictions_fingerprint,
)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelyard.evaluation.report import EvaluationReport
    from modelyard.models.fit import Predictions
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry
    from modelyard.spec import ProjectSpec

__all__ = ["Parent", "load_parent", "register_derived", "relative_loss"]


@dataclass(frozen=True)
class Parent:
    """A registered version with what deriving from it needs.

    Attributes:
        version: the registered version.
        spec: its recorded spec.
        pipeline: its fitted pipeline (checksum-verified).
        frame: its frozen snapshot.
        train_rows: positions in ``frame`` of the training rows (the split, rebuilt).
        eval_rows: positions in ``frame`` of the evaluation rows (as recorded).
    """

    version: ModelVersion
    spec: ProjectSpec
    pipeline: Pipeline
    frame: pd.DataFrame
    train_rows: np.ndarray[Any, Any]
    eval_rows: np.ndarray[Any, Any]

    @property
    def train_frame(self) -> pd.DataFrame:
        """The training rows, target included."""
        return self.frame.iloc[self.train_rows].reset_index(drop=True)

    @property
    def eval_frame(self) -> pd.DataFrame:
        """The evaluation rows, target included."""
        return self.frame.iloc[self.eval_rows].reset_index(drop=True)

    @property
    def metric(self) -> str:
        """The spec's primary metric: the one compression is allowed to lose on."""
        return self.spec.evaluation.resolved_primary(self.spec.task)


def load_parent(registry: Registry, ref: str) -> Parent:
    """The version ``ref`` with its pipeline, snapshot and split.

    The training rows are the spec's split of the snapshot, rebuilt (it is deterministic:
    ``reproduce`` relies on the same); the evaluation rows are the recorded ones.
    """
    from modelyard.data.snapshot import frame_from_parquet
    from modelyard.data.split import split_rows
    from modelyard.registry.readers import load_version_pipeline
    from modelyard.spec import ProjectSpec

    version = registry.get_version(ref)
    spec = ProjectSpec.model_validate(version.spec)
    frame = frame_from_parquet(registry.read_artifact(version, "snapshot"))
    table = frame_from_parquet(registry.read_artifact(version, "evaluation"))
    train_rows, _ = split_rows(
        frame,
        spec.split,
        target=spec.target,
        task=spec.task,
        seed=spec.seed,
        timestamp_column=spec.data.timestamp_column,
    )
    return Parent(
        version=version,
        spec=spec,
        pipeline=load_version_pipeline(registry, version),
        frame=frame,
        train_rows=np.asarray(train_rows),
        eval_rows=table["row"].to_numpy(),
    )


def relative_loss(spec: ProjectSpec, metric: str, reference: float, candidate: float) -> float:
    """How much worse ``candidate`` is than ``reference`` on ``metric``, relative to the
    reference (0.01: 1% worse; negative: better)."""
    worse = reference - candidate if spec.higher_is_better(metric) else candidate - reference
    return float(worse / abs(reference)) if reference else float(worse)


def metric_value(
    spec: ProjectSpec, metric: str, rows: pd.DataFrame, predictions: Predictions
) -> float:
    """``metric`` of ``predictions`` against the target of ``rows``."""
    from modelyard.evaluation.metrics import compute_metrics

    values = compute_metrics(
        spec.task,
        [metric],
        rows[spec.target].to_numpy(),
        predictions.values,
        predictions.proba,
        predictions.classes,
        positive=spec.positive_class,
    )
    return float(values[metric])


def register_derived(
    registry: Registry,
    parent: Parent,
    pipeline: Pipeline,
    *,
    spec: ProjectSpec,
    derived: DerivedLineage,
    actor: str,
) -> tuple[ModelVersion, EvaluationReport]:
    """Evaluate ``pipeline`` like a training would and register it as a new version of
    the parent's model, its lineage naming the parent.

    ``spec`` is the spec recorded with it (the parent's, with the estimator it has now).
    """
    from modelyard.models.estimators import estimator_structure
    from modelyard.models.fit import predict
    from modelyard.registry.registry import ArtifactInput
    from modelyard.workflows.evaluate import Reference, evaluate_rows
    from modelyard.workflows.train import export_onnx_artifact, register_model

    rows = parent.eval_frame
    predictions = predict(pipeline, rows)
    report = evaluate_rows(
        spec,
        model=spec.name,
        version=None,
        rows=rows,
        predictions=predictions,
        y_train=parent.frame[spec.target].iloc[parent.train_rows],
        reference=Reference(ref=parent.version.ref, pipeline=parent.pipeline),
        id_columns=[c for c in spec.data.id_columns if c in parent.frame.columns],
    )
    onnx, onnx_summary = export_onnx_artifact(spec, pipeline, rows)
    recorded = parent.version.lineage_record
    lineage = Lineage.model_validate(
        recorded.model_dump(by_alias=True, exclude={"onnx", "derived", "model", "predictions"})
        | {
            "schema_version": recorded.schema_version,
            "model": ModelLineage(
                estimator=spec.model.estimator,
                hyperparameters=spec.model.params,
                structure=estimator_structure(pipeline.named_steps["model"]),
            ),
            "predictions": PredictionsLineage(
                fingerprint=predictions_fingerprint(predictions.values, predictions.proba),
                rows=len(rows),
            ),
            "onnx": OnnxLineage.model_validate(onnx_summary),
            "derived": derived,
        }
    )
    snapshot = ArtifactInput(
        registry.read_artifact(parent.version, "snapshot"),
        "application/vnd.apache.parquet",
        dict(parent.version.artifacts["snapshot"].extra),
    )
    version = register_model(
        registry,
        spec,
        pipeline=pipeline,
        snapshot=snapshot,
        frame=parent.frame,
        eval_rows=parent.eval_rows,
        predictions=predictions,
        onnx=onnx,
        lineage=lineage,
        report=report,
        actor=actor,
        description=f"{derived.method} of {parent.version.ref}",
    )
    return version, report.model_copy(update={"version": version.version})
