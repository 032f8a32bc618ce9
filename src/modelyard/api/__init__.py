"""The Python API: the CLI's verbs as functions, for notebooks and scripts.

Example:
    >>> import modelyard
    >>> result = modelyard.train("examples/house-prices")   # doctest: +SKIP
    >>> result.ref, result.report.metrics["rmse"]            # doctest: +SKIP
    ('house-prices:1', 21873.4)
"""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard._progress import Progress
from modelyard.api._export import compress, distill, export_edge, export_onnx
from modelyard.api._open import open_registry
from modelyard.errors import DataError, SpecError
from modelyard.settings import Settings, default_actor
from modelyard.spec import SPEC_FILENAME, LoadedSpec, ProjectSpec, load_spec

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelyard.evaluation.diff import PredictionDiff
    from modelyard.evaluation.report import EvaluationReport
    from modelyard.registry.registry import (
        AliasChange,
        AuditEntry,
        ModelSummary,
        ModelVersion,
        Registry,
    )
    from modelyard.workflows.reproduce import ReproduceReport
    from modelyard.workflows.train import TrainResult

__all__ = [
    "compress",
    "diff",
    "distill",
    "evaluate",
    "export_edge",
    "export_onnx",
    "history",
    "init",
    "list_models",
    "load_model",
    "open_registry",
    "promote",
    "quickstart",
    "reproduce",
    "rollback",
    "show",
    "train",
]

EXAMPLE = "house-prices"


def init(
    data: str | Path,
    *,
    target: str,
    name: str | None = None,
    directory: str | Path | None = None,
    force: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> InitResult:
    """Create a project folder whose spec is inferred from ``data`` and trains as it is.

    The data file is copied into ``<folder>/data/``; the spec refers to the copy. A CSV
    file's ``encoding`` and ``delimiter`` are detected unless given (see
    :func:`~modelyard.data.sources.sniff_csv`) and written to ``data.source.options``
    when they are not UTF-8 and comma. What the inference decided and why (left-out
    columns, the split, the positive class) is written as comments in the spec.

    Returns:
        An :class:`InitResult`: the written ``modelyard.yaml`` (``spec_file``), the spec
        as data and the notes written as comments.

    Raises:
        DataError: the file is missing or unreadable, or the target cannot be learned.
        SpecError: a spec exists already and ``force`` is not set.
    """
    from modelyard.data.profile import render_suggestion, suggest_project
    from modelyard.data.sources import read_source, sniff_csv
    from modelyard.spec import DataSpec, SourceSpec

    source = Path(data)
    if not source.is_file():
        raise DataError(f"{source}: no such file; give the path of a CSV or Parquet file")
    project_name = name or _slug(source.name.split(".")[0])
    folder = Path(directory) if directory else Path(project_name)
    spec_file = folder / SPEC_FILENAME
    if spec_file.exists() and not force:
        raise SpecError(f"{spec_file} exists already; pass --force to overwrite it")
    source_spec = SourceSpec(path=str(source.absolute()))
    options: dict[str, str] = {}
    if source_spec.kind == "csv":
        options = sniff_csv(source, encoding=encoding, delimiter=delimiter)
    elif encoding or delimiter:
        raise DataError(f"{source}: --encoding and --delimiter apply to CSV files only")
    frame = read_source(
        DataSpec(source=SourceSpec(path=str(source.absolute()), options=options)),
        base_dir=Path.cwd(),
    )
    relative = f"data/{source.name}"
    suggestion = suggest_project(
        frame, target=target, name=project_name, source_path=relative, source_options=options
    )
    ProjectSpec.model_validate(suggestion.spec)  # never write a spec that does not validate
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if source.absolute() != (folder / relative).absolute():
        shutil.copyfile(source, folder / relative)
    header = f"# modelyard project spec, inferred from {source.name}; edit freely.\n"
    spec_file.write_text(header + render_suggestion(suggestion), encoding="utf-8")
    return InitResult(spec_file=spec_file, spec=suggestion.spec, notes=suggestion.notes)


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote: the spec file, the spec as data, and the reasons behind it.

    ``notes`` maps a top-level spec key (``split``, ``features``...) to the reasons
    written above it as comments.
    """

    spec_file: Path
    spec: dict[str, object]
    notes: dict[str, list[str]]


def train(
    project: str | Path = ".",
    *,
    settings: Settings | None = None,
    actor: str | None = None,
    progress: Progress | None = None,
    onnx: bool = True,
) -> TrainResult:
    """Train, evaluate and register the project's model; see :class:`TrainResult`.

    ``onnx=False`` skips the ONNX export (``modelyard export`` can add it later).

    A version whose gates fail is registered with ``passed = False`` and cannot be
    promoted without ``allow_failed_gates``.
    """
    from modelyard.workflows.train import train as run_training

    loaded = load_checked_spec(project)
    with open_registry(settings) as registry:
        return run_training(
            loaded.spec,
            loaded.project_dir,
            registry,
            actor=actor or default_actor(),
            spec_path=loaded.path,
            progress=progress,
            onnx=onnx,
        )


def load_checked_spec(project: str | Path) -> LoadedSpec:
    """Load a spec and check what can be checked before any data is read.

    Beyond the schema (:func:`~modelyard.spec.load_spec`), the estimator is built: its
    class must import and fit the task, and every hyperparameter must be one the class
    takes, with a value its library accepts. Errors name the file and line.

    Raises:
        SpecError: the spec is invalid; the message starts with ``file:line key``.
        MissingExtraError: the estimator's library is not installed.
    """
    from modelyard.models.estimators import build_estimator

    loaded = load_spec(project)
    try:
        build_estimator(loaded.spec.model, task=loaded.spec.task, seed=loaded.spec.seed)
    except SpecError as exc:
        key = exc.details.get("key") if isinstance(exc.details, dict) else None
        if key is None:  # messages start with their dotted key: "model.estimator: ..."
            key = exc.message.split(":", 1)[0] if exc.message.startswith("model") else "model"
        where = loaded.where(str(key))
        raise SpecError(f"{where} {exc.message}", details=exc.details) from None
    return loaded


def evaluate(
    ref: str,
    *,
    data: str | Path | pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> EvaluationReport:
    """Evaluate a registered version on labelled ``data`` (default: its evaluation rows).

    New data is validated against the version's recorded schema first.
    """
    from modelyard.data.schema import DataSchema, check_frame, check_target, validate_frame
    from modelyard.data.snapshot import frame_from_parquet
    from modelyard.errors import ModelNotFoundError
    from modelyard.evaluation.report import with_findings
    from modelyard.models.fit import predict
    from modelyard.registry.readers import evaluation_frame, load_version_pipeline
    from modelyard.workflows.evaluate import Reference, evaluate_rows, lineage_summary

    with open_registry(settings) as registry:
        version = registry.get_version(ref)
        spec = ProjectSpec.model_validate(version.spec)
        pipeline = load_version_pipeline(registry, version)
        rows = evaluation_frame(registry, version) if data is None else _read_table(data)
        check_target(rows, spec.target, spec.task)
        schema = DataSchema.model_validate(version.lineage_record.data_schema)
        features = version.lineage_record.features.feature_order
        check_frame(
            rows,
            schema,
            columns=features,
            unseen_categories="error" if spec.features.encode.unknown == "error" else "ignore",
            check_ranges=spec.data.out_of_range == "refuse",
            range_tolerance=spec.data.range_tolerance,
        )
        if spec.data.out_of_range == "warn":
            for problem in validate_frame(
                rows,
                schema,
                columns=features,
                unseen_categories="ignore",
                range_tolerance=spec.data.range_tolerance,
            ):
                logging.getLogger(__name__).warning(
                    "%s: %s (accepted: data.out_of_range is warn)", version.ref, problem.message
                )
        snapshot = frame_from_parquet(registry.read_artifact(version, "snapshot"))
        train_mask = ~snapshot.index.isin(_evaluation_positions(registry, version))
        reference = None
        try:
            production = registry.get_version(f"{version.name}@production")
            if production.version != version.version:
                reference = Reference(production.ref, load_version_pipeline(registry, production))
        except ModelNotFoundError:
            pass
        report = evaluate_rows(
            spec,
            model=version.name,
            version=version.version,
            rows=rows,
            predictions=predict(pipeline, rows),
            y_train=snapshot.loc[train_mask, spec.target],
            reference=reference,
            id_columns=[c for c in spec.data.id_columns if c in rows.columns],
            threshold=version.lineage_record.model.decision_threshold,
            pipeline=pipeline,
            feature_columns=features,
        )
        report = report.model_copy(update={"lineage": lineage_summary(version.lineage_record)})
        if data is not None:
            overlap = _training_overlap(rows, snapshot.loc[train_mask], spec)
            if overlap:
                report = with_findings(
                    report,
                    [
                        f"{overlap:,} of the {len(rows):,} rows were training rows of "
                        f"{version.ref}; metrics on them are optimistic, evaluate on new rows"
                    ],
                )
        return report


def diff(
    ref_a: str,
    ref_b: str,
    *,
    data: str | Path | pd.DataFrame | None = None,
    atol: float | None = None,
    top: int | None = None,
    settings: Settings | None = None,
) -> PredictionDiff:
    """The differential test: how the predictions of ``ref_b`` differ from ``ref_a``.

    Both versions predict the same rows: ``data`` if given, else ``ref_b``'s evaluation rows.
    """
    from modelyard.evaluation.diff import diff_predictions
    from modelyard.models.fit import predict
    from modelyard.registry.readers import evaluation_frame, load_version_pipeline

    with open_registry(settings) as registry:
        old_version = registry.get_version(ref_a)
        new_version = registry.get_version(ref_b)
        spec = ProjectSpec.model_validate(new_version.spec)
        rows = evaluation_frame(registry, new_version) if data is None else _read_table(data)
        old = predict(load_version_pipeline(registry, old_version), rows)
        new = predict(load_version_pipeline(registry, new_version), rows)
        ids = [c for c in spec.data.id_columns if c in rows.columns]
        same_classes = old.classes == new.classes
        return diff_predictions(
            old.values,
            new.values,
            task=spec.task,
            atol=spec.evaluation.diff_tolerance if atol is None else atol,
            ids=rows[ids].reset_index(drop=True) if ids else None,
            old_proba=old.proba if same_classes else None,
            new_proba=new.proba if same_classes else None,
            top=spec.evaluation.top_changes if top is None else top,
        )


def list_models(*, settings: Settings | None = None) -> list[ModelSummary]:
    """Every registered model with its latest version and aliases."""
    with open_registry(settings) as registry:
        return registry.list_models()


def history(
    name: str | None = None, *, limit: int = 100, settings: Settings | None = None
) -> list[AuditEntry]:
    """The audit trail (newest first): who registered, promoted or rolled back what, and why."""
    with open_registry(settings) as registry:
        return registry.audit_log(name, limit=limit)


def show(ref: str, *, settings: Settings | None = None) -> ModelVersion:
    """One version: metrics, lineage, artifacts, aliases (``NAME`` = latest)."""
    with open_registry(settings) as registry:
        return registry.get_version(ref)


def load_model(ref: str, *, settings: Settings | None = None) -> Pipeline:
    """The fitted pipeline of a version, after checking its checksum against the registry."""
    from modelyard.registry.readers import load_version_pipeline

    with open_registry(settings) as registry:
        return load_version_pipeline(registry, registry.get_version(ref))


def promote(
    ref: str,
    *,
    alias: str = "production",
    reason: str = "",
    allow_failed_gates: bool = False,
    allow_corrupt: bool = False,
    actor: str | None = None,
    settings: Settings | None = None,
) -> AliasChange:
    """Point ``alias`` of the model at the version ``ref`` names; audited.

    The version's artifacts are verified first: a version that failed its gates, or
    whose stored artifacts do not match the registry, is refused unless the matching
    override (``allow_failed_gates``, ``allow_corrupt``) comes with a ``reason``. The
    change is announced to stream consumers when ``MODELYARD_EVENTS_URL`` is set.
    """
    from modelyard.streaming.events import announce

    with open_registry(settings) as registry:
        version = registry.get_version(ref)
        change = registry.set_alias(
            version.name,
            alias,
            version.version,
            actor=actor or default_actor(),
            reason=reason,
            allow_failed_gates=allow_failed_gates,
            allow_corrupt=allow_corrupt,
        )
    return announce(change, settings)  # to stream consumers, when MODELYARD_EVENTS_URL is set


def rollback(
    name: str,
    *,
    alias: str = "production",
    reason: str = "",
    allow_corrupt: bool = False,
    actor: str | None = None,
    settings: Settings | None = None,
) -> AliasChange:
    """Move ``alias`` back to the version it pointed to before its latest move; audited.

    Refused when that version's artifacts do not verify, unless ``allow_corrupt`` comes
    with a ``reason``. Announced like :func:`promote`.
    """
    from modelyard.streaming.events import announce

    with open_registry(settings) as registry:
        change = registry.rollback(
            name,
            alias,
            actor=actor or default_actor(),
            reason=reason,
            allow_corrupt=allow_corrupt,
        )
    return announce(change, settings)


def reproduce(
    ref: str,
    *,
    project: str | Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> ReproduceReport:
    """Rebuild a version from its lineage and compare; see :mod:`modelyard.workflows.reproduce`."""
    from modelyard.workflows.reproduce import reproduce_version

    with open_registry(settings) as registry:
        version = registry.get_version(ref)
        return reproduce_version(
            registry,
            version,
            project=Path(project) if project else None,
            progress=progress,
        )


def quickstart(
    directory: str | Path | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Copy the bundled house-price project to ``directory`` and train it end to end.

    ``directory`` defaults to ``<home>/projects/house-prices``; an existing copy is reused
    as it is, so edits to it are kept.
    """
    settings = settings or Settings()
    folder = Path(directory) if directory else settings.home.expanduser() / "projects" / EXAMPLE
    if not (folder / SPEC_FILENAME).is_file():
        example_project(folder)
    return train(folder, settings=settings, progress=progress)


def example_project(destination: Path) -> Path:
    """Copy the bundled house-price example (spec and compressed Ames data) to ``destination``."""
    source = resources.files("modelyard") / "examples" / EXAMPLE
    destination.mkdir(parents=True, exist_ok=True)
    _copy_tree(source, destination)
    return destination


def _copy_tree(source: resources.abc.Traversable, destination: Path) -> None:
    for item in source.iterdir():
        if item.name.startswith((".", "__")):
            continue
        target = destination / item.name
        if item.is_dir():
            target.mkdir(exist_ok=True)
            _copy_tree(item, target)
        else:
            target.write_bytes(item.read_bytes())


def _read_table(data: str | Path | pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    from modelyard.data.sources import read_source
    from modelyard.spec import DataSpec, SourceSpec

    path = Path(data).absolute()
    return read_source(DataSpec(source=SourceSpec(path=str(path))), base_dir=Path.cwd())


def _training_overlap(rows: pd.DataFrame, train: pd.DataFrame, spec: ProjectSpec) -> int:
    """How many of ``rows`` were training rows: same ids, or else the same values in
    every shared column (target included)."""
    import pandas as pd

    ids = [c for c in spec.data.id_columns if c in rows.columns and c in train.columns]
    columns = ids or [c for c in rows.columns if c in train.columns]
    if not columns:
        return 0
    seen = set(pd.util.hash_pandas_object(train[columns].astype(str), index=False).tolist())
    hashes = pd.util.hash_pandas_object(rows[columns].astype(str), index=False)
    return int(hashes.isin(seen).sum())


def _evaluation_positions(registry: Registry, version: ModelVersion) -> list[int]:
    import pandas as pd

    table = pd.read_parquet(io.BytesIO(registry.read_artifact(version, "evaluation")))
    return [int(v) for v in table["row"]]


def _slug(text: str) -> str:
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._").lower()
    return slug or "project"
