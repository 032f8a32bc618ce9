"""Train: data layer → feature layer → scoring layer → evaluation layer → registry.

``build`` is the deterministic part (read, split, fit, predict on the evaluation rows);
``train`` adds evaluation, lineage and registration. ``reproduce`` runs ``build`` again
from a version's lineage and compares.
"""

from __future__ import annotations

import difflib
import io
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelyard._progress import NullProgress, Progress
from modelyard.data.checks import refuse_unservable, training_findings
from modelyard.data.prepare import PreparedRows, read_project_rows
from modelyard.data.schema import DataSchema, infer_schema
from modelyard.data.snapshot import frame_digest, frame_to_parquet
from modelyard.data.sources import describe_source
from modelyard.data.split import split_rows
from modelyard.errors import ModelNotFoundError, SpecError
from modelyard.evaluation.report import EvaluationReport, with_findings
from modelyard.features.build import FeaturePlan, feature_definition_hash, plan_features
from modelyard.models.artifacts import dump_pipeline
from modelyard.models.estimators import estimator_structure
from modelyard.models.fit import Predictions, build_pipeline, fit_pipeline, predict
from modelyard.models.stateful import Continuation, continue_fit
from modelyard.models.threshold import ThresholdChoice, apply_threshold
from modelyard.registry.lineage import (
    ChecksLineage,
    DataLineage,
    FeatureLineage,
    Lineage,
    ModelLineage,
    OnnxLineage,
    PredictionsLineage,
    PreparationLineage,
    RetrainLineage,
    StatefulLineage,
    TrainingLineage,
    capture_environment,
    capture_git,
    predictions_fingerprint,
)
from modelyard.registry.readers import load_version_pipeline
from modelyard.registry.registry import ArtifactInput, ModelVersion, Registry
from modelyard.spec import ProjectSpec, spec_digest, spec_to_dict
from modelyard.workflows.evaluate import Reference, evaluate_rows, lineage_summary

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "Build",
    "TrainResult",
    "build",
    "evaluation_table",
    "export_onnx_artifact",
    "register_model",
    "train",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Build:
    """A fitted pipeline and everything needed to evaluate and record it."""

    spec: ProjectSpec
    project_dir: Path
    frame: pd.DataFrame
    snapshot_digest: str
    train_rows: np.ndarray
    eval_rows: np.ndarray
    plan: FeaturePlan
    feature_hash: str
    pipeline: Pipeline
    predictions: Predictions
    fingerprint: str
    fit_seconds: float
    threshold: ThresholdChoice | None = None
    continuation: Continuation | None = None

    @property
    def eval_frame(self) -> pd.DataFrame:
        """The evaluation rows, target included."""
        return self.frame.iloc[self.eval_rows].reset_index(drop=True)


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` registered: the version, its report and whether its gates passed."""

    version: ModelVersion
    report: EvaluationReport

    @property
    def ref(self) -> str:
        """``NAME:VERSION`` of the registered version."""
        return self.version.ref

    @property
    def passed(self) -> bool:
        """Whether every gate passed (only then is the version promotable)."""
        return self.report.passed

    def __repr__(self) -> str:
        # The report holds every slice and the diff; a repr names the outcome.
        return (
            f"TrainResult(ref={self.ref!r}, passed={self.passed}, "
            f"metrics={self.report.metrics!r}, warnings={len(self.report.warnings)})"
        )


def build(
    spec: ProjectSpec,
    project_dir: Path,
    frame: pd.DataFrame,
    *,
    progress: Progress | None = None,
    start_from: Pipeline | None = None,
) -> Build:
    """Split ``frame``, fit the spec's pipeline on the training rows, predict the rest.

    With ``start_from`` (a fitted pipeline of the same feature definition), the fit
    continues from it where its estimator can (:func:`~modelyard.models.stateful.
    continue_fit`); otherwise, and when it cannot, the pipeline is fitted from scratch.
    ``Build.continuation`` says which happened.
    """
    from modelyard.data.schema import check_target

    progress = progress or NullProgress()
    check_target(frame, spec.target, spec.task)
    _check_columns_exist(spec, frame)
    with progress.step("splitting rows"):
        train_rows, eval_rows = split_rows(
            frame,
            spec.split,
            target=spec.target,
            task=spec.task,
            seed=spec.seed,
            timestamp_column=spec.data.timestamp_column,
        )
    plan = plan_features(spec, frame)
    refuse_unservable(spec, list(plan.input_columns))
    feature_hash = feature_definition_hash(spec, plan, project_dir=project_dir)
    pipeline = build_pipeline(spec, plan, project_dir=project_dir)
    train = frame.iloc[train_rows]
    continuation = None
    with progress.step(f"fitting {spec.model.estimator.rsplit('.', 1)[-1]} on {len(train):,} rows"):
        started = time.perf_counter()
        with _project_on_path(project_dir):
            if start_from is not None:
                continuation = continue_fit(start_from, train, train[spec.target], spec=spec)
            if continuation is not None and continuation.pipeline is not None:
                pipeline = continuation.pipeline
            else:
                fit_pipeline(pipeline, train, train[spec.target], spec=spec)
            # Chosen on validation rows carved from ``train``; never on ``eval_rows``.
            threshold = apply_threshold(pipeline, train, train[spec.target], spec=spec)
        fit_seconds = time.perf_counter() - started
    with progress.step(f"predicting {len(eval_rows):,} evaluation rows"):
        predictions = predict(pipeline, frame.iloc[eval_rows])
    return Build(
        spec=spec,
        project_dir=project_dir,
        frame=frame,
        snapshot_digest="",
        train_rows=train_rows,
        eval_rows=eval_rows,
        plan=plan,
        feature_hash=feature_hash,
        pipeline=pipeline,
        predictions=predictions,
        fingerprint=predictions_fingerprint(predictions.values, predictions.proba),
        fit_seconds=fit_seconds,
        threshold=threshold,
        continuation=continuation,
    )


def train(
    spec: ProjectSpec,
    project_dir: Path,
    registry: Registry,
    *,
    actor: str,
    spec_path: Path | None = None,
    progress: Progress | None = None,
    onnx: bool = True,
    rows: PreparedRows | None = None,
    start_from: Pipeline | None = None,
    retrain: RetrainLineage | None = None,
) -> TrainResult:
    """Train, evaluate and register one version of ``spec.name``.

    ``rows`` replaces reading the spec's source (retraining assembles its own rows);
    ``start_from`` continues from a fitted pipeline (see :func:`build`); ``retrain``
    is recorded in the lineage, with what ``start_from`` gave.

    With ``onnx`` (the default) the pipeline is also exported to ONNX and its parity
    recorded, so servers can use ONNX Runtime; ``modelyard export`` can do it later.

    A version whose gates fail is registered all the same, with its report and
    ``gates_passed = False``: it can be inspected and diffed, but not promoted
    without an explicit override.
    """
    progress = progress or NullProgress()
    progress.start(8)
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    with progress.step(f"reading {spec.data.source.path or 'SQL source'}"):
        prepared = rows if rows is not None else read_project_rows(spec, project_dir)
        frame = prepared.frame
    with progress.step(f"snapshotting {len(frame):,} rows"):
        digest = frame_digest(frame)
    result = build(spec, project_dir, frame, progress=progress, start_from=start_from)
    with progress.step("evaluating against baseline and production"):
        reference = _production_reference(registry, spec.name)
        report = evaluate_rows(
            spec,
            model=spec.name,
            version=None,
            rows=result.eval_frame,
            predictions=result.predictions,
            y_train=frame[spec.target].iloc[result.train_rows],
            reference=reference,
            id_columns=_present(spec.data.id_columns, frame),
            threshold=result.threshold.to_dict() if result.threshold else None,
            pipeline=result.pipeline,
            feature_columns=list(result.plan.input_columns),
        )
        findings = training_findings(
            spec, frame, result.train_rows, list(result.plan.input_columns)
        )
        if findings.messages:
            for message in findings.messages:
                logger.warning("%s: %s", spec.name, message)
            fail = spec.evaluation.leakage == "fail" and bool(findings.leaks)
            report = with_findings(
                report, findings.messages, failing_gate="no likely target leak" if fail else None
            )
    with progress.step("exporting to ONNX and checking parity"):
        if onnx:
            onnx_artifact, onnx_summary = export_onnx_artifact(
                spec, result.pipeline, result.eval_frame
            )
        else:
            onnx_artifact, onnx_summary = None, {"exported": False, "skipped": True}
    with progress.step("registering the version"):
        schema = infer_schema(
            frame[_schema_columns(spec, result.plan, frame)],
            categorical=result.plan.categorical,
        )
        lineage = _lineage(spec, result, schema, digest, project_dir, spec_path).model_copy(
            update={
                "onnx": OnnxLineage.model_validate(onnx_summary),
                "preparation": PreparationLineage.model_validate(prepared.record),
                "checks": ChecksLineage.model_validate(findings.record()),
                "training": TrainingLineage(
                    started_at=started_at.isoformat(),
                    fit_seconds=round(result.fit_seconds, 3),
                    total_seconds=round(time.perf_counter() - clock, 3),
                ),
            }
            | _retrain_part(retrain, result.continuation)
        )
        report = report.model_copy(update={"lineage": lineage_summary(lineage)})
        snapshot = ArtifactInput(
            data=frame_to_parquet(frame),
            media_type="application/vnd.apache.parquet",
            extra={"content_digest": digest, "rows": len(frame)},
        )
        version = register_model(
            registry,
            spec,
            pipeline=result.pipeline,
            snapshot=snapshot,
            frame=frame,
            eval_rows=result.eval_rows,
            predictions=result.predictions,
            onnx=onnx_artifact,
            lineage=lineage,
            report=report,
            actor=actor,
            description=spec.description,
        )
    report = report.model_copy(update={"version": version.version})
    return TrainResult(version=version, report=report)


def register_model(
    registry: Registry,
    spec: ProjectSpec,
    *,
    pipeline: Pipeline,
    snapshot: ArtifactInput,
    frame: pd.DataFrame,
    eval_rows: np.ndarray,
    predictions: Predictions,
    onnx: ArtifactInput | None,
    lineage: Lineage,
    report: EvaluationReport,
    actor: str,
    description: str,
) -> ModelVersion:
    """Register a fitted ``pipeline`` as the next version of ``spec.name``: the pipeline,
    its data ``snapshot`` (``frame``), its evaluation table, its ONNX export if any, its
    lineage and report."""
    model_bytes, trusted = dump_pipeline(pipeline)
    artifacts = {
        "model": ArtifactInput(
            data=model_bytes, media_type="application/x-skops", extra={"trusted": trusted}
        ),
        "snapshot": snapshot,
        "evaluation": ArtifactInput(
            data=evaluation_table(spec, frame, eval_rows, predictions),
            media_type="application/vnd.apache.parquet",
            extra={"rows": len(eval_rows)},
        ),
    }
    if onnx is not None:
        artifacts["onnx"] = onnx
    return registry.register_version(
        spec.name,
        artifacts=artifacts,
        spec=spec_to_dict(spec),
        lineage=lineage,
        metrics=_finite(report.metrics),
        report=_finite(report.model_dump(mode="json")),
        gates_passed=report.passed,
        actor=actor,
        description=description,
    )


def _retrain_part(
    retrain: RetrainLineage | None, continuation: Continuation | None
) -> dict[str, RetrainLineage]:
    """The lineage's ``retrain`` part (none for a plain training), with what the
    continued fit did or why it trained from scratch."""
    if retrain is None:
        return {}
    if continuation is None:
        return {"retrain": retrain}
    stateful = StatefulLineage(
        continued=continuation.continued,
        method=continuation.method,
        parent=retrain.stateful.parent,
        reason=continuation.reason,
    )
    return {"retrain": retrain.model_copy(update={"stateful": stateful})}


def export_onnx_artifact(
    spec: ProjectSpec, pipeline: Pipeline, rows: pd.DataFrame
) -> tuple[ArtifactInput | None, dict[str, Any]]:
    """Convert the fitted pipeline to ONNX and check parity on the evaluation rows.

    Never fails the training: without the ``onnx`` extra, or for a pipeline the converters
    do not cover, the version is served by the reference pipeline and the reason is kept
    in its lineage. ``modelyard export`` can convert it later.
    """
    from modelyard.errors import MissingExtraError, ModelyardError

    try:
        from modelyard.export.onnx import export_pipeline
    except ImportError as exc:
        return None, {"exported": False, "error": f"the onnx extra is not installed ({exc})"}
    try:
        exported = export_pipeline(pipeline, rows, task=spec.task)
    except (MissingExtraError, ModelyardError) as exc:
        logger.info("no ONNX export for %s: %s", spec.name, exc)
        return None, {"exported": False, "error": str(exc)}
    extra = exported.artifact_extra()
    artifact = ArtifactInput(data=exported.model, media_type="application/onnx", extra=extra)
    return artifact, {"exported": True, "parity": extra.get("parity")}


def _production_reference(registry: Registry, name: str) -> Reference | None:
    try:
        production = registry.get_version(f"{name}@production")
    except ModelNotFoundError:
        return None
    return Reference(ref=production.ref, pipeline=load_version_pipeline(registry, production))


def _lineage(
    spec: ProjectSpec,
    result: Build,
    schema: DataSchema,
    digest: str,
    project_dir: Path,
    spec_path: Path | None,
) -> Lineage:
    return Lineage(
        project_dir=str(project_dir.absolute()),
        spec_path=str(spec_path) if spec_path else None,
        spec_digest=spec_digest(spec_to_dict(spec)),
        seed=spec.seed,
        data=DataLineage(
            source=describe_source(spec.data, base_dir=project_dir),
            snapshot_digest=digest,
            rows=len(result.frame),
            columns=[str(column) for column in result.frame.columns],
            train_rows=len(result.train_rows),
            eval_rows=len(result.eval_rows),
        ),
        features=FeatureLineage(
            definition_hash=result.feature_hash,
            feature_order=list(result.plan.input_columns),
            numeric=list(result.plan.numeric),
            categorical=list(result.plan.categorical),
        ),
        model=ModelLineage(
            estimator=spec.model.estimator,
            hyperparameters=spec.model.params,
            structure=estimator_structure(result.pipeline.named_steps["model"]),
            decision_threshold=result.threshold.to_dict() if result.threshold else None,
        ),
        schema=schema.model_dump(mode="json"),
        code=capture_git(project_dir),
        environment=capture_environment(),
        predictions=PredictionsLineage(fingerprint=result.fingerprint, rows=len(result.eval_rows)),
    )


def evaluation_table(
    spec: ProjectSpec, frame: pd.DataFrame, eval_rows: np.ndarray, predictions: Predictions
) -> bytes:
    """The ``evaluation`` artifact: evaluation rows (positions in the snapshot ``frame``),
    their ids, target and ``predictions``, as Parquet."""
    table = pd.DataFrame({"row": eval_rows.astype("int64")})
    for column in _present(spec.data.id_columns, frame):
        table[column] = frame[column].iloc[eval_rows].to_numpy()
    table["target"] = frame[spec.target].iloc[eval_rows].to_numpy()
    table["prediction"] = predictions.values
    if predictions.proba is not None and predictions.classes is not None:
        for index, label in enumerate(predictions.classes):
            table[f"proba_{label}"] = predictions.proba[:, index]
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _schema_columns(spec: ProjectSpec, plan: FeaturePlan, frame: pd.DataFrame) -> list[str]:
    wanted = [*plan.input_columns, spec.target, *spec.data.id_columns]
    if spec.data.timestamp_column:
        wanted.append(spec.data.timestamp_column)
    return [c for c in dict.fromkeys(wanted) if c in frame.columns]


def _finite(value: Any) -> Any:
    """JSON data with NaN and infinities as null: undefined metrics (e.g. ROC AUC on one
    class) are stored as null, since JSON and PostgreSQL have no NaN."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _present(columns: list[str], frame: pd.DataFrame) -> list[str]:
    return [c for c in columns if c in frame.columns]


def _check_columns_exist(spec: ProjectSpec, frame: pd.DataFrame) -> None:
    named: list[tuple[str, str]] = [
        (f"data.id_columns.{i}", c) for i, c in enumerate(spec.data.id_columns)
    ]
    named += [(f"evaluation.slices.{i}", c) for i, c in enumerate(spec.evaluation.slices)]
    named += [("split.column", spec.split.column)] if spec.split.column else []
    for index, gate in enumerate(spec.evaluation.gates):
        if gate.slice:
            named.append((f"evaluation.gates.{index}.slice", gate.slice))
    problems = []
    for key, column in named:
        if column not in frame.columns:
            close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"{key}: column '{column}' is not in the data{hint}")
    if problems:
        raise SpecError("\n".join(["the spec names columns the data does not have:", *problems]))


@contextmanager
def _project_on_path(project_dir: Path | None) -> Iterator[None]:
    """Make the project's own modules (custom transformers) importable for a while."""
    if project_dir is None or not project_dir.is_dir():
        yield
        return
    entry = str(project_dir.absolute())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)
