"""Compress a registered version for the edge: prune, quantize, distill; measure each.

``compress_version`` tries, on the version's evaluation rows, every compression that
applies (see :mod:`modelyard.export.compress`), keeps for each method the smallest
model whose primary metric is at most ``max_metric_loss`` worse than the version's,
and measures it: ONNX size raw and gzip, per-row latency in ONNX Runtime, metric,
parity of its graph. The smallest of them is registered as a new version whose lineage
names its parent (``modelyard.workflows.derive``). The table is stored with the parent
(artifact ``compression``).

The pruning level is chosen on the evaluation rows, the rows the loss is reported on:
that choice is part of the measurement, as for any model selected on a holdout, and
the gates of the new version are checked on the same rows. ``modelyard monitor`` on
fresh labelled rows tells whether the loss holds.

``distill_version`` trains a student on the teacher's predictions over the training
rows plus generated rows near them, and reports its fidelity to the teacher next to its
accuracy against the labels.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import ModelyardError
from modelyard.registry.lineage import DerivedLineage
from modelyard.workflows.derive import (
    Parent,
    load_parent,
    metric_value,
    register_derived,
    relative_loss,
)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelyard.evaluation.report import EvaluationReport
    from modelyard.export._records import OnnxInput
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry
    from modelyard.spec import ProjectSpec

__all__ = [
    "CompressionReport",
    "CompressionRow",
    "DistillResult",
    "compress_version",
    "distill_version",
    "nearby_rows",
]

#: Pruning levels tried for first-k pruning (evenly spaced from 1 to all trees).
FIRST_K_LEVELS = 60
#: Generated rows per training row for distillation, by default.
GENERATED_PER_ROW = 2
#: Share of a generated row's values taken from another training row.
SWAP_SHARE = 0.2


@dataclass(frozen=True)
class CompressionRow:
    """One line of the compression table.

    Attributes:
        method: ``reference``, ``first-k``, ``best-k``, ``float32``, ``quantize-int8``
            or ``distill``.
        description: what was kept, e.g. ``first 350 of 600 iterations``.
        trees: trees (iterations) kept, for ensembles.
        size_raw: bytes of the ONNX graph; ``size_gzip`` gzip-compressed.
        latency_ms: median per-row latency of one-row calls in ONNX Runtime (Python).
        metric: the primary metric on the evaluation rows.
        loss: how much worse than the reference (0.01: 1%; negative: better).
        parity_max_abs: largest difference of the graph from its own pipeline (the
            reference pipeline for quantization: that is its whole cost).
        within: whether ``loss`` is within the allowed loss.
        note: why a method does not apply, or what else to know.
    """

    method: str
    description: str
    trees: int | None = None
    size_raw: int | None = None
    size_gzip: int | None = None
    latency_ms: float | None = None
    metric: float | None = None
    loss: float | None = None
    parity_max_abs: float | None = None
    within: bool = False
    note: str = ""


@dataclass
class CompressionReport:
    """The compression table of a version and what was registered from it."""

    ref: str
    metric: str
    max_loss: float
    rows: list[CompressionRow] = field(default_factory=list)
    registered: str | None = None
    report: EvaluationReport | None = None

    def record(self) -> dict[str, Any]:
        """The JSON kept with the version (artifact ``compression``)."""
        from modelyard.export._records import finite

        record: dict[str, Any] = finite(
            {
                "ref": self.ref,
                "metric": self.metric,
                "max_loss": self.max_loss,
                "rows": [asdict(row) for row in self.rows],
                "registered": self.registered,
                "gates_passed": None if self.report is None else self.report.passed,
            }
        )
        return record


@dataclass(frozen=True)
class DistillResult:
    """A distilled student: its version, its table row, and its fidelity to the teacher.

    ``fidelity`` on the evaluation rows: regression ``rmse``, ``mae`` and ``r2`` of the
    student against the teacher's values; classification ``agreement``, the share of
    rows where both predict the same label.
    """

    version: ModelVersion
    report: EvaluationReport
    row: CompressionRow
    reference: CompressionRow
    fidelity: dict[str, float]
    generated_rows: int


def compress_version(
    registry: Registry,
    ref: str,
    *,
    max_metric_loss: float = 0.01,
    register: bool = True,
    actor: str,
) -> CompressionReport:
    """Prune and quantize ``ref`` within ``max_metric_loss``; register the smallest.

    Raises:
        ModelyardError: ``max_metric_loss`` is negative.
        ExportError: the version has no ONNX export and cannot be converted.
    """
    from modelyard.export.compress import ensemble_size

    if max_metric_loss < 0:
        raise ModelyardError(
            f"--max-metric-loss must be 0 or more, got {max_metric_loss}; e.g. 1% or 0.01"
        )
    parent = load_parent(registry, ref)
    measure = _Measure.of(registry, parent, actor=actor)
    table = CompressionReport(parent.version.ref, parent.metric, max_metric_loss)
    table.rows.append(measure.reference)
    candidates: list[tuple[CompressionRow, Pipeline, DerivedLineage]] = []
    size = ensemble_size(parent.pipeline)
    if size is None:
        name = type(parent.pipeline.steps[-1][1]).__name__
        table.rows.append(CompressionRow("first-k", "-", note=f"{name} is not an ensemble"))
    else:
        candidates.append(_first_k(parent, measure, size, max_metric_loss))
        best = _best_k(parent, measure, size, max_metric_loss)
        if isinstance(best, CompressionRow):
            table.rows.append(best)
        else:
            candidates.append(best)
    table.rows.extend(row for row, _, _ in candidates)
    table.rows.append(measure.float32(max_metric_loss))
    table.rows.append(measure.quantized(max_metric_loss))
    fitting = [item for item in candidates if item[0].within and item[0].size_gzip is not None]
    if register and fitting:
        row, pipeline, derived = min(fitting, key=lambda item: item[0].size_gzip or 0)
        version, report = register_derived(
            registry,
            parent,
            pipeline,
            spec=_pruned_spec(parent, pipeline),
            derived=derived,
            actor=actor,
        )
        table.registered, table.report = version.ref, report
    _store(registry, parent.version, table.record(), actor=actor)
    return table


def distill_version(
    registry: Registry,
    ref: str,
    *,
    student: str,
    params: dict[str, Any] | None = None,
    generated: int | None = None,
    actor: str,
) -> DistillResult:
    """Train ``student`` (an estimator's import path) on the teacher's predictions and
    register it as a version of the teacher's model, its lineage naming the teacher.

    The student learns from the training rows and ``generated`` rows near them (default
    two per training row; see :func:`nearby_rows`), every one labelled by the teacher:
    its values (regression) or its labels (classification). The student gets the
    teacher's feature pipeline, refitted.

    Raises:
        SpecError: ``student`` or ``params`` do not make an estimator.
    """
    from modelyard.features.build import plan_features
    from modelyard.models.fit import build_pipeline, fit_pipeline, predict
    from modelyard.spec import ProjectSpec, spec_to_dict

    parent = load_parent(registry, ref)
    raw = spec_to_dict(parent.spec)
    raw["model"] = {"estimator": student, "params": dict(params or {})}
    spec = ProjectSpec.model_validate(raw)
    train = parent.train_frame
    count = GENERATED_PER_ROW * len(train) if generated is None else generated
    rows = _concat(train, nearby_rows(train, count, seed=spec.seed))
    taught = predict(parent.pipeline, rows).values
    recorded = parent.version.lineage_record.project_dir
    project_dir = Path(recorded) if recorded and Path(recorded).is_dir() else None
    pipeline = build_pipeline(spec, plan_features(spec, parent.frame), project_dir=project_dir)
    fit_pipeline(pipeline, rows, _series(taught, spec.target), spec=spec)
    fidelity = _fidelity(
        spec,
        predict(parent.pipeline, parent.eval_frame).values,
        predict(pipeline, parent.eval_frame).values,
    )
    measure = _Measure.of(registry, parent, actor=actor)
    name = student.rsplit(".", 1)[-1]
    row, _, derived = measure.candidate(
        "distill",
        f"{name} {_params_text(params)}".strip(),
        pipeline,
        max_loss=float("inf"),
        details={
            "student": student,
            "params": dict(params or {}),
            "generated_rows": count,
            "fidelity": fidelity,
        },
    )
    version, report = register_derived(
        registry, parent, pipeline, spec=spec, derived=derived, actor=actor
    )
    return DistillResult(version, report, row, measure.reference, fidelity, count)


def nearby_rows(rows: pd.DataFrame, count: int, *, seed: int) -> pd.DataFrame:
    """``count`` rows near ``rows``: copies of random rows with about one value in five
    (:data:`SWAP_SHARE`) taken from another random row.

    The swap part of MUNGE (Buciluă, Caruana and Niculescu-Mizil, "Model Compression",
    KDD 2006): every value stays one the column really holds, categories included, so
    the generated rows pass the input contract; the teacher labels them.
    """
    import pandas as pd

    if count <= 0 or rows.empty:
        return rows.iloc[:0]
    random = np.random.default_rng(seed)
    base = rows.iloc[random.integers(0, len(rows), count)].reset_index(drop=True)
    columns = {}
    for column in rows.columns:
        donors = rows[column].iloc[random.integers(0, len(rows), count)].reset_index(drop=True)
        swap = pd.Series(random.random(count) < SWAP_SHARE)
        columns[column] = base[column].where(~swap, donors)
    return pd.DataFrame(columns)


def _concat(*frames: pd.DataFrame) -> pd.DataFrame:
    """Frames one after the other, renumbered."""
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def _series(values: np.ndarray[Any, Any], name: str) -> pd.Series[Any]:
    import pandas as pd

    return pd.Series(values, name=name)


def _params_text(params: dict[str, Any] | None) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted((params or {}).items()))


def _fidelity(
    spec: ProjectSpec, teacher: np.ndarray[Any, Any], student: np.ndarray[Any, Any]
) -> dict[str, float]:
    if spec.task != "regression":
        return {"agreement": float(np.mean(np.asarray(teacher) == np.asarray(student)))}
    from modelyard.evaluation.metrics import compute_metrics

    values = compute_metrics("regression", ["rmse", "mae", "r2"], teacher, student)
    return {key: float(value) for key, value in values.items()}


@dataclass
class _Measure:
    """Measures candidates against the parent version's graph on its evaluation rows."""

    parent: Parent
    graph: bytes
    extra: dict[str, Any]
    reference_value: float
    reference: CompressionRow
    _float32: tuple[bytes, list[OnnxInput]] | None = None

    @classmethod
    def of(cls, registry: Registry, parent: Parent, *, actor: str) -> _Measure:
        from modelyard.export.compress import graph_size
        from modelyard.models.fit import predict
        from modelyard.registry.readers import read_onnx_graph
        from modelyard.workflows.edge import onnx_artifact

        version = onnx_artifact(registry, parent.version, force=False, actor=actor)
        stored = read_onnx_graph(registry, version)
        rows = parent.eval_frame
        value = metric_value(parent.spec, parent.metric, rows, predict(parent.pipeline, rows))
        size = graph_size(stored.model)
        from modelyard.export.compress import ensemble_size

        reference = CompressionRow(
            "reference",
            parent.version.ref,
            trees=ensemble_size(parent.pipeline),
            size_raw=size.raw,
            size_gzip=size.gzip,
            metric=value,
            loss=0.0,
            parity_max_abs=(stored.extra.get("parity") or {}).get("max_abs"),
            within=True,
        )
        measure = cls(parent, stored.model, stored.extra, value, reference)
        measure.reference = CompressionRow(
            **{**asdict(reference), "latency_ms": measure.latency(stored.model, stored.extra)}
        )
        return measure

    def latency(self, graph: bytes, extra: dict[str, Any]) -> float:
        """Per-row latency of ``graph``, fed as its export record ``extra`` says."""
        from modelyard.export._records import OnnxInput

        inputs = [OnnxInput.from_dict(item) for item in extra["inputs"]]
        return self._latency(graph, inputs, extra.get("classes"))

    def _latency(self, graph: bytes, inputs: list[OnnxInput], classes: Any = None) -> float:
        from modelyard.export.compress import row_latency_ms

        return row_latency_ms(
            graph,
            inputs,
            self.parent.eval_frame,
            task=self.parent.spec.task,
            classes=classes if classes is not None else self.extra.get("classes"),
        )

    def loss(self, pipeline: Pipeline) -> tuple[float, float]:
        """The metric of ``pipeline`` on the evaluation rows and its loss."""
        from modelyard.models.fit import predict

        rows, spec = self.parent.eval_frame, self.parent.spec
        value = metric_value(spec, self.parent.metric, rows, predict(pipeline, rows))
        return value, relative_loss(spec, self.parent.metric, self.reference_value, value)

    def candidate(
        self,
        method: str,
        description: str,
        pipeline: Pipeline,
        *,
        max_loss: float,
        details: dict[str, Any],
        retrainable: bool = False,
    ) -> tuple[CompressionRow, Pipeline, DerivedLineage]:
        """Export ``pipeline`` and measure it; its lineage record if it is registered."""
        from modelyard.export.compress import ensemble_size, graph_size
        from modelyard.export.onnx import export_pipeline

        value, loss = self.loss(pipeline)
        exported = export_pipeline(pipeline, self.parent.eval_frame, task=self.parent.spec.task)
        size = graph_size(exported.model)
        row = CompressionRow(
            method,
            description,
            trees=ensemble_size(pipeline),
            size_raw=size.raw,
            size_gzip=size.gzip,
            latency_ms=self.latency(exported.model, exported.artifact_extra()),
            metric=value,
            loss=loss,
            parity_max_abs=exported.parity.max_abs,
            within=loss <= max_loss and exported.parity.ok,
            note="" if exported.parity.ok else "its ONNX graph does not hold parity",
        )
        derived = DerivedLineage(
            method=method,
            parent=self.parent.version.ref,
            parent_fingerprint=self.parent.version.lineage_record.predictions.fingerprint,
            retrainable=retrainable,
            details={
                **details,
                "metric": self.parent.metric,
                "metric_value": value,
                "metric_loss": loss,
                "size_gzip": size.gzip,
                "parent_size_gzip": self.reference.size_gzip,
            },
        )
        return row, pipeline, derived

    def float32(self, max_loss: float) -> CompressionRow:
        """The parent's graph with the model in float32 (tree thresholds, weights)."""
        converted = self._float32_graph()
        if isinstance(converted, str):
            return CompressionRow("float32", "-", note=converted)
        graph, inputs = converted
        row = self._graph_row(
            "float32",
            "model in float32 (thresholds, weights), features cast before it",
            graph,
            inputs,
        )
        parity = "holds" if row.within else "fails"
        return dataclasses.replace(
            row,
            within=row.within and (row.loss or 0.0) <= max_loss,
            note=f"parity {parity}; measured, not registered: no scikit-learn twin",
        )

    def quantized(self, max_loss: float) -> CompressionRow:
        """The graph with int8 weights, where it has float32 matrix products: the
        parent's own graph, or else its float32 graph (:meth:`float32`)."""
        from modelyard.export._records import OnnxInput
        from modelyard.export.compress import quantize_graph, unquantizable

        source: tuple[bytes, list[OnnxInput]] | str = (
            self.graph,
            [OnnxInput.from_dict(item) for item in self.extra["inputs"]],
        )
        reason = unquantizable(self.graph)
        if reason is not None:
            source = self._float32_graph()
            reason = source if isinstance(source, str) else unquantizable(source[0])
        if reason is not None or isinstance(source, str):
            return CompressionRow("quantize-int8", "-", note=reason or "not applicable")
        row = self._graph_row(
            "quantize-int8",
            "dynamic int8 weights (MatMul, Gemm)",
            quantize_graph(source[0]),
            source[1],
        )
        return dataclasses.replace(
            row,
            within=(row.loss or 0.0) <= max_loss,
            note="measured, not registered: the int8 graph has no scikit-learn twin",
        )

    def _float32_graph(self) -> tuple[bytes, list[OnnxInput]] | str:
        """The parent's pipeline converted with its model in float32 (once), or why
        there is none: the reference graph is that already, or it does not convert."""
        from modelyard.export._convert import PRECISION_FLOAT_MODEL
        from modelyard.export.onnx import ExportError, convert_pipeline

        if self.extra.get("precision") == PRECISION_FLOAT_MODEL:
            return "not applicable: the reference graph computes its model in float32"
        if self._float32 is None:
            try:
                graph, inputs, _ = convert_pipeline(
                    self.parent.pipeline, task=self.parent.spec.task, float32_model=True
                )
            except ExportError as error:
                return f"not applicable: the model does not convert in float32 ({error})"
            self._float32 = (graph, inputs)
        return self._float32

    def _graph_row(
        self, method: str, description: str, graph: bytes, inputs: list[OnnxInput]
    ) -> CompressionRow:
        """Measure a graph with no scikit-learn twin: its metric, its parity against the
        parent's pipeline (``within`` says whether the parity holds), size, latency."""
        from modelyard.export._runtime import OnnxRuntime
        from modelyard.export.compress import graph_size
        from modelyard.export.onnx import columns_from_frame, compare_outputs
        from modelyard.models.fit import Predictions, predict

        rows, spec = self.parent.eval_frame, self.parent.spec
        classes = self.extra.get("classes")
        runtime = OnnxRuntime(graph, inputs, task=spec.task, classes=classes)
        output = runtime.predict(columns_from_frame(rows, inputs), len(rows))
        got = Predictions(np.asarray(output.values), output.proba, classes)
        value = metric_value(spec, self.parent.metric, rows, got)
        parity = compare_outputs(predict(self.parent.pipeline, rows), output, task=spec.task)
        size = graph_size(graph)
        return CompressionRow(
            method,
            description,
            trees=self.reference.trees,
            size_raw=size.raw,
            size_gzip=size.gzip,
            latency_ms=self._latency(graph, inputs),
            metric=value,
            loss=relative_loss(spec, self.parent.metric, self.reference_value, value),
            parity_max_abs=parity.max_abs,
            within=parity.ok,
        )


def _first_k(
    parent: Parent, measure: _Measure, size: int, max_loss: float
) -> tuple[CompressionRow, Pipeline, DerivedLineage]:
    """The fewest first iterations (trees) within ``max_loss``."""
    from modelyard.export.compress import first_k

    levels = sorted({int(k) for k in np.linspace(1, size, min(size, FIRST_K_LEVELS)).round()})
    chosen = size
    for k in levels:
        if measure.loss(first_k(parent.pipeline, k))[1] <= max_loss:
            chosen = k
            break
    unit = "iterations" if "Boosting" in type(parent.pipeline.steps[-1][1]).__name__ else "trees"
    return measure.candidate(
        "first-k",
        f"first {chosen} of {size} {unit}",
        first_k(parent.pipeline, chosen),
        max_loss=max_loss,
        details={"kept": chosen, "of": size},
        retrainable=True,
    )


def _best_k(
    parent: Parent, measure: _Measure, size: int, max_loss: float
) -> tuple[CompressionRow, Pipeline, DerivedLineage] | CompressionRow:
    """The fewest reweighted trees within ``max_loss``, along the lasso path."""
    from modelyard.export.compress import best_k_path, reweighted

    if type(parent.pipeline.steps[-1][1]).__name__ != "HistGradientBoostingRegressor":
        return CompressionRow(
            "best-k", "-", note="reweighting applies to HistGradientBoostingRegressor only"
        )
    train = parent.train_frame
    path = best_k_path(parent.pipeline, train, train[parent.spec.target].to_numpy())
    for weights in path:
        pipeline = reweighted(parent.pipeline, weights)
        if measure.loss(pipeline)[1] <= max_loss:
            kept = int(np.count_nonzero(weights))
            return measure.candidate(
                "best-k",
                f"best {kept} of {size} iterations, reweighted",
                pipeline,
                max_loss=max_loss,
                details={"kept": kept, "of": size, "lasso_path_points": len(path)},
            )
    return CompressionRow(
        "best-k", "-", note=f"no point of the lasso path is within {max_loss:.1%} of the metric"
    )


def _pruned_spec(parent: Parent, pipeline: Pipeline) -> ProjectSpec:
    """The parent's spec with the pruned ensemble's size among its parameters."""
    from modelyard.export.compress import ensemble_size
    from modelyard.spec import ProjectSpec, spec_to_dict

    raw = spec_to_dict(parent.spec)
    model = pipeline.steps[-1][1]
    key = "max_iter" if hasattr(model, "max_iter") else "n_estimators"
    raw["model"] = {
        **raw["model"],
        "params": {**raw["model"].get("params", {}), key: ensemble_size(pipeline)},
    }
    return ProjectSpec.model_validate(raw)


def _store(
    registry: Registry, version: ModelVersion, record: dict[str, Any], *, actor: str
) -> None:
    from modelyard.registry.registry import ArtifactInput

    data = json.dumps(record, indent=1, sort_keys=True).encode()
    registry.add_artifact(
        version,
        "compression",
        ArtifactInput(data, "application/json", record),
        actor=actor,
        replace=True,
    )
