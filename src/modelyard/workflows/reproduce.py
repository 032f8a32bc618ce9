"""Rebuild a registered version from its lineage and prove it predicts the same.

``reproduce`` retrains from the version's frozen data snapshot (its content digest
checked first) with the project's current spec and code in the current environment,
and compares everything its lineage recorded:

- spec: the project's ``modelyard.yaml`` now against the recorded spec, key by key;
- data: the source read now against the recorded snapshot digest;
- feature code: the feature-definition hash (custom transformer source included);
- environment: Python, OS, and every package version that changed;
- predictions: the fingerprint on the evaluation rows, and if it differs, by how much.

Any of these differing makes the result a mismatch. Changes that cannot change the
model on their own (a new git commit with identical feature code, packages installed
or removed since) are reported as notes. A version a stateful retrain continued from
its parent (``lineage.retrain.stateful``) is rebuilt the same way, from the parent's
stored pipeline.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelyard._progress import NullProgress, Progress
from modelyard.data.prepare import read_project_rows
from modelyard.data.snapshot import frame_digest, frame_from_parquet
from modelyard.errors import DataError, IntegrityError, SpecError
from modelyard.registry.lineage import Lineage, capture_environment, capture_git
from modelyard.registry.readers import load_version_pipeline
from modelyard.registry.registry import ModelVersion, Registry
from modelyard.spec import SPEC_FILENAME, ProjectSpec, load_spec, spec_to_dict
from modelyard.workflows.train import build

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["ReproduceReport", "reproduce_version"]


@dataclass
class ReproduceReport:
    """The outcome of ``reproduce``: ``matches`` is True only with no differences."""

    ref: str
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fingerprint_recorded: str = ""
    fingerprint_now: str = ""
    rows_compared: int = 0
    rows_changed: int = 0
    max_abs_change: float = 0.0

    @property
    def matches(self) -> bool:
        """Whether the rebuild matched the lineage in every respect."""
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for ``--json``."""
        return {
            "ref": self.ref,
            "matches": self.matches,
            "differences": self.differences,
            "notes": self.notes,
            "fingerprint_recorded": self.fingerprint_recorded,
            "fingerprint_now": self.fingerprint_now,
            "rows_compared": self.rows_compared,
            "rows_changed": self.rows_changed,
            "max_abs_change": self.max_abs_change,
        }


def reproduce_version(
    registry: Registry,
    version: ModelVersion,
    *,
    project: Path | None = None,
    progress: Progress | None = None,
) -> ReproduceReport:
    """Rebuild ``version`` and compare it with its lineage (see the module docstring)."""
    progress = progress or NullProgress()
    progress.start(4)
    lineage = version.lineage_record
    report = ReproduceReport(ref=version.ref)
    if lineage.derived is not None and not lineage.derived.retrainable:
        # Reweighted trees and distilled students are made from their parent, not
        # trained from a spec: their evidence is the parent's reproduction.
        report.differences.append(
            f"{version.ref} was made by {lineage.derived.method} from "
            f"{lineage.derived.parent}, not trained from its spec; reproduce "
            f"{lineage.derived.parent} instead"
        )
        return report
    project_dir = project or Path(lineage.project_dir or ".")
    spec = _current_spec(version, project_dir, report)

    with progress.step("checking the data snapshot and source"):
        snapshot = frame_from_parquet(registry.read_artifact(version, "snapshot"))
        recorded_digest = lineage.data.snapshot_digest
        if not recorded_digest:
            raise IntegrityError(
                f"{version.ref}: its lineage records no snapshot digest, so it cannot be "
                "reproduced; register it again with `modelyard train`"
            )
        if frame_digest(snapshot) != recorded_digest:
            raise IntegrityError(
                f"{version.ref}: the stored snapshot's content no longer has digest "
                f"{recorded_digest}; the registry's artifacts were modified"
            )
        _compare_source(spec, lineage, project_dir, recorded_digest, snapshot, report)

    with progress.step("comparing code and environment"):
        _compare_code(lineage, project_dir, report)
        _compare_environment(lineage, report)

    start_from = _parent_pipeline(registry, version, report)
    rebuilt = build(spec, project_dir, snapshot, progress=progress, start_from=start_from)
    with progress.step("comparing predictions"):
        if rebuilt.feature_hash != lineage.features.definition_hash:
            report.differences.append(
                "feature code: the feature-definition hash changed (spec features or a custom "
                "transformer's source)"
            )
        report.fingerprint_recorded = lineage.predictions.fingerprint or ""
        report.fingerprint_now = rebuilt.fingerprint
        _compare_predictions(
            registry, version, rebuilt.eval_rows, rebuilt.predictions.values, report
        )
    return report


def _parent_pipeline(
    registry: Registry, version: ModelVersion, report: ReproduceReport
) -> Pipeline | None:
    """The pipeline a stateful retrain continued from (its parent version's), if any."""
    retrain = version.lineage_record.retrain
    if retrain is None or not retrain.stateful.continued or retrain.stateful.parent is None:
        return None
    parent = registry.get_version(retrain.stateful.parent)
    report.notes.append(f"continued from {parent.ref} as it was ({retrain.stateful.method})")
    return load_version_pipeline(registry, parent)


def _current_spec(version: ModelVersion, project_dir: Path, report: ReproduceReport) -> ProjectSpec:
    recorded = ProjectSpec.model_validate(version.spec)
    spec_file = project_dir / SPEC_FILENAME
    if not spec_file.is_file():
        report.notes.append(f"no {spec_file}; rebuilt from the spec recorded in the registry")
        return recorded
    try:
        current = load_spec(spec_file).spec
    except SpecError as exc:
        report.differences.append(f"spec: {spec_file} no longer validates: {exc}")
        return recorded
    for line in _dict_changes(spec_to_dict(recorded), spec_to_dict(current)):
        report.differences.append(f"spec: {line}")
    return current


def _compare_source(
    spec: ProjectSpec,
    lineage: Lineage,
    project_dir: Path,
    recorded_digest: str,
    snapshot: pd.DataFrame,
    report: ReproduceReport,
) -> None:
    retrain = lineage.retrain
    if retrain is not None and retrain.as_of is not None:  # read as the retrain read it
        at = pd.Timestamp(retrain.as_of).to_pydatetime()
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"as_of": at})})
    try:
        frame = read_project_rows(spec, project_dir).frame
    except DataError as exc:
        report.notes.append(f"data: the source cannot be read now ({exc}); used the snapshot")
        return
    if retrain is not None and retrain.log_rows:
        # The labelled prediction log's rows have no source to re-read: they come from
        # the snapshot, after the source's rows, as the retrain put them.
        logged = snapshot.iloc[retrain.source_rows :]
        frame = pd.concat([frame, logged], ignore_index=True)
        report.notes.append(f"data: {len(logged):,} rows of the prediction log from the snapshot")
    digest = frame_digest(frame)
    if digest != recorded_digest:
        report.differences.append(
            f"data: the source now gives {len(frame):,} rows with digest {digest[:12]}, "
            f"recorded {len(snapshot):,} rows with digest {recorded_digest[:12]} "
            "(the rebuild used the recorded snapshot)"
        )


def _compare_code(lineage: Lineage, project_dir: Path, report: ReproduceReport) -> None:
    recorded = lineage.code
    now = capture_git(project_dir)
    if recorded.get("commit") != now.get("commit"):
        report.notes.append(
            f"code: git commit recorded {recorded.get('commit') or 'none'}, "
            f"now {now.get('commit') or 'none'}"
        )
    if now.get("dirty"):
        report.notes.append("code: the project folder has uncommitted changes")


def _compare_environment(lineage: Lineage, report: ReproduceReport) -> None:
    recorded = lineage.environment
    current = capture_environment()
    for key in ("python", "implementation", "os", "machine"):
        if recorded.get(key) != current.get(key):
            report.differences.append(
                f"environment: {key} recorded {recorded.get(key)}, now {current.get(key)}"
            )
    old: dict[str, str] = recorded.get("packages", {})
    new: dict[str, str] = current["packages"]
    for name in sorted(set(old) | set(new)):
        if name in old and name in new and old[name] != new[name]:
            report.differences.append(f"package {name}: recorded {old[name]}, now {new[name]}")
        elif name in old and name not in new:
            report.notes.append(f"package {name} {old[name]} is no longer installed")
        elif name in new and name not in old:
            report.notes.append(f"package {name} {new[name]} was installed since")


def _compare_predictions(
    registry: Registry,
    version: ModelVersion,
    eval_rows: np.ndarray,
    values: np.ndarray,
    report: ReproduceReport,
) -> None:
    table = pd.read_parquet(io.BytesIO(registry.read_artifact(version, "evaluation")))
    recorded_rows = table["row"].to_numpy()
    report.rows_compared = len(recorded_rows)
    if not np.array_equal(recorded_rows, eval_rows):
        report.differences.append(
            f"predictions: the split now gives {len(eval_rows):,} evaluation rows, "
            f"recorded {len(recorded_rows):,} (different rows)"
        )
        return
    if report.fingerprint_now == report.fingerprint_recorded:
        return
    old = table["prediction"].to_numpy()
    if old.dtype.kind in "biuf" and np.asarray(values).dtype.kind in "biuf":
        change = np.abs(np.asarray(values, dtype=float) - old.astype(float))
        report.rows_changed = int(np.count_nonzero(change > 0))
        report.max_abs_change = float(change.max()) if len(change) else 0.0
        scale = float(np.max(np.abs(old))) or 1.0
        detail = (
            f"{report.rows_changed:,} of {len(old):,} rows changed, largest change "
            f"{report.max_abs_change:.6g} ({report.max_abs_change / scale:.2e} of the largest "
            "prediction)"
        )
    else:
        report.rows_changed = int(
            np.count_nonzero(old.astype(str) != np.asarray(values).astype(str))
        )
        detail = f"{report.rows_changed:,} of {len(old):,} predicted labels changed"
        if report.rows_changed == 0:
            detail += " (class probabilities moved)"
    report.differences.append(
        f"predictions: fingerprint recorded {report.fingerprint_recorded[:12]}, now "
        f"{report.fingerprint_now[:12]}: {detail}"
    )


def _dict_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as ``key: old → new`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                lines.append(f"{path}: added {new[key]!r}")
            elif key not in new:
                lines.append(f"{path}: removed (was {old[key]!r})")
            else:
                lines.extend(_dict_changes(old[key], new[key], path))
        return lines
    if old != new:
        return [f"{prefix}: {old!r} → {new!r}"]
    return []
