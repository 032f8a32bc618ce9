"""``retrain``: fresh rows → train (stateful where it can) → gates against production →
a registered candidate, with the trigger in its lineage.

A retrain never moves ``production``. A candidate whose gates pass gets the spec's
``retrain.candidate_alias`` (default ``candidate``), from where shadow, canary or a
person promotes it; one whose gates fail is registered for inspection with
``gates_passed = False`` and no alias, so nothing serves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from modelyard._progress import Progress
from modelyard.continual.rows import FreshRows, fresh_rows
from modelyard.continual.triggers import TriggerCheck, check_triggers, latest_version
from modelyard.errors import ModelNotFoundError, SpecError
from modelyard.features.build import feature_definition_hash, plan_features
from modelyard.registry.lineage import RetrainLineage, StatefulLineage
from modelyard.registry.readers import load_version_pipeline
from modelyard.registry.registry import ModelVersion, Registry
from modelyard.settings import Settings
from modelyard.spec import LoadedSpec, ProjectSpec, load_spec, spec_to_dict
from modelyard.workflows.train import TrainResult, train

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["EXIT_CODES", "RetrainOutcome", "find_spec", "retrain"]

logger = logging.getLogger(__name__)

Status = Literal["candidate", "failed_gates", "not_due"]

#: The exit code of ``modelyard retrain`` for each outcome (errors keep theirs: 2 bad
#: usage, spec or data; 3 an artifact failed its checksum). 99 is what Airflow's
#: ``BashOperator`` reads as "skipped" by default (``skip_on_exit_code``).
EXIT_CODES: dict[Status, int] = {"candidate": 0, "failed_gates": 1, "not_due": 99}


@dataclass(frozen=True)
class RetrainOutcome:
    """What :func:`retrain` did.

    Attributes:
        model: the model's name.
        status: ``candidate`` (registered, gates passed), ``failed_gates`` (registered,
            gates failed; production unchanged) or ``not_due`` (no trigger due; nothing
            done).
        check: the triggers found due (a retrain by hand records ``manual``).
        result: the training result (None when not due).
        production: the production version compared with (None if there was none).
        alias: the alias the candidate got (None if none).
    """

    model: str
    status: Status
    check: TriggerCheck
    result: TrainResult | None = None
    production: str | None = None
    alias: str | None = None

    @property
    def exit_code(self) -> int:
        """The command's exit code for this outcome (see :data:`EXIT_CODES`)."""
        return EXIT_CODES[self.status]


def find_spec(registry: Registry, name: str, project: Path | None) -> LoadedSpec:
    """The spec of ``name``: ``project`` (a folder or file), else the spec file the
    model's latest version was trained from.

    Raises:
        ModelNotFoundError: no ``project`` and the model has no version.
        SpecError: the spec is missing or invalid, or names another model.
    """
    if project is None:
        latest = latest_version(registry, name)
        if latest is None:
            raise ModelNotFoundError(
                f"model {name!r} has no version in {registry.url} to find its spec from; "
                "train it first (modelyard train PROJECT) or pass --project PROJECT"
            )
        lineage = latest.lineage_record
        recorded = lineage.spec_path or lineage.project_dir
        if recorded is None:
            raise SpecError(
                f"{latest.ref} records no spec file; pass --project with the project folder"
            )
        project = Path(recorded)
    loaded = load_spec(project)
    if loaded.spec.name != name:
        raise SpecError(
            f"{loaded.path}: the spec is for model {loaded.spec.name!r}, not {name!r}; "
            "pass --project with the folder of this model's spec"
        )
    return loaded


def retrain(
    settings: Settings,
    name: str,
    *,
    project: Path | None = None,
    if_due: bool = False,
    actor: str = "retrain",
    now: datetime | None = None,
    progress: Progress | None = None,
    onnx: bool = True,
) -> RetrainOutcome:
    """Retrain ``name`` (by hand, or only ``if_due`` by its spec's triggers).

    Args:
        settings: where the registry and the prediction log are.
        name: the model's name.
        project: its project folder or spec file (default: where its latest version
            was trained from).
        if_due: retrain only when a declared trigger is due; otherwise by hand
            (``manual``), with the due triggers recorded as well.
        actor: who retrains, for the audit trail.
        now: the time to read the source as of and to check triggers at.
        progress: receives the steps.
        onnx: export the candidate to ONNX, as ``train`` does.

    Raises:
        ModelNotFoundError: an unknown model with no ``project``.
        SpecError: the spec is missing or invalid.
        DataError: the source or the prediction log cannot be read.
        IntegrityError: the production version's artifacts fail their checksum.
    """
    now = now or datetime.now(UTC)
    with Registry.open(settings) as registry:
        loaded = find_spec(registry, name, project)
        spec = loaded.spec
        check = check_triggers(settings, spec, registry, now=now)
        if if_due and not check.fired:
            return RetrainOutcome(name, "not_due", check)
        trigger = check.trigger if if_due and check.trigger else "manual"
        production = _production(registry, name)
        fresh = fresh_rows(settings, spec, loaded.project_dir, now=now)
        start_from, stateful = _stateful_start(registry, spec, loaded, production, fresh)
        record = RetrainLineage(
            trigger=trigger,
            reasons=[f"{key}: {reason}" for key, reason in check.due.items()],
            at=now.isoformat(),
            production=production.ref if production else None,
            as_of=fresh.as_of.isoformat() if fresh.as_of else None,
            source_rows=fresh.source_rows,
            log_rows=fresh.log_rows,
            labels_through=fresh.labels_through.isoformat() if fresh.labels_through else None,
            stateful=stateful,
        )
        result = train(
            spec,
            loaded.project_dir,
            registry,
            actor=actor,
            spec_path=loaded.path,
            progress=progress,
            onnx=onnx,
            rows=fresh.prepared,
            start_from=start_from,
            retrain=record,
        )
        alias = spec.retrain.candidate_alias if result.passed else None
        if alias is not None:
            registry.set_alias(
                name,
                alias,
                result.version.version,
                actor=actor,
                reason=f"retrained ({trigger}); gates passed against "
                f"{production.ref if production else 'no production version'}",
            )
    status: Status = "candidate" if result.passed else "failed_gates"
    logger.info("retrained %s (%s): %s", result.ref, trigger, status)
    return RetrainOutcome(
        name,
        status,
        check,
        result=result,
        production=production.ref if production else None,
        alias=alias,
    )


def _production(registry: Registry, name: str) -> ModelVersion | None:
    try:
        return registry.get_version(f"{name}@production")
    except ModelNotFoundError:
        return None


def _stateful_start(
    registry: Registry,
    spec: ProjectSpec,
    loaded: LoadedSpec,
    production: ModelVersion | None,
    fresh: FreshRows,
) -> tuple[Pipeline | None, StatefulLineage]:
    """The production pipeline to continue from, or None and why not."""

    def scratch(reason: str) -> tuple[None, StatefulLineage]:
        return None, StatefulLineage(parent=production.ref if production else None, reason=reason)

    if spec.retrain.stateful == "never":
        return scratch("retrain.stateful is 'never'")
    if production is None:
        return scratch("no version is in production to continue from")
    recorded = production.spec
    current = spec_to_dict(spec)
    if recorded.get("model") != current["model"] or recorded.get("task") != spec.task:
        return scratch(f"the model section changed since {production.ref}")
    lineage = production.lineage_record.features
    plan = plan_features(spec, fresh.prepared.frame)
    digest = feature_definition_hash(spec, plan, project_dir=loaded.project_dir)
    if digest != lineage.definition_hash or list(plan.input_columns) != lineage.feature_order:
        return scratch(f"the feature definition changed since {production.ref}")
    pipeline = load_version_pipeline(registry, production)
    return pipeline, StatefulLineage(parent=production.ref, reason="continuing")
