"""Lineage: what a model version was built from, so it can be rebuilt and compared.

A version's lineage records the data snapshot digest and source, the feature-definition
hash and feature order, the spec (hyperparameters, seeds), the code version of the
project folder (git commit and dirty flag), the environment (Python, OS, every installed
package), and a fingerprint of the predictions on the evaluation rows.

:class:`Lineage` is that record as a typed, versioned model. New versions are written
with ``schema_version`` :data:`LINEAGE_SCHEMA_VERSION` and validated strictly (frozen,
unknown keys refused). Lineages stored before the model existed carry no
``schema_version``: they read as version 1, and keys the model does not know are
ignored, so every registry written by an earlier modelyard still opens. The stored JSON
keeps its shape: ``Lineage.from_stored(version_row) == Lineage.from_stored(
lineage.to_stored())``.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LINEAGE_SCHEMA_VERSION",
    "DataLineage",
    "DerivedLineage",
    "FeatureLineage",
    "Lineage",
    "ModelLineage",
    "OnnxLineage",
    "PredictionsLineage",
    "RetrainLineage",
    "StatefulLineage",
    "TrainingLineage",
    "capture_environment",
    "capture_git",
    "compare_environments",
    "predictions_fingerprint",
]


#: The lineage schema new versions are written with. 1: the untyped dict of modelyard
#: up to 0.x (no ``schema_version`` key); 2: this model.
LINEAGE_SCHEMA_VERSION = 2


class _Part(BaseModel):
    """A part of a lineage: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DataLineage(_Part):
    """The data a version was trained on: its source, snapshot digest and split sizes."""

    source: dict[str, Any] = Field(default_factory=dict)
    snapshot_digest: str | None = None
    rows: int | None = None
    columns: list[str] = Field(default_factory=list)
    train_rows: int | None = None
    eval_rows: int | None = None


class FeatureLineage(_Part):
    """The feature definition: its hash and the raw input columns, in the model's order."""

    definition_hash: str | None = None
    feature_order: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)


class ModelLineage(_Part):
    """The estimator, its hyperparameters and the fitted structure."""

    estimator: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    structure: Any = None
    #: value, positive_class, rule, validation_rows, validation_score, detail
    #: (see modelyard.models.threshold.ThresholdChoice); None without a threshold.
    decision_threshold: dict[str, Any] | None = None


class PredictionsLineage(_Part):
    """The fingerprint of the predictions on the evaluation rows (see
    :func:`predictions_fingerprint`)."""

    fingerprint: str | None = None
    rows: int | None = None


class OnnxLineage(_Part):
    """What the ONNX export at registration gave: exported with its parity, skipped, or
    the error that prevented it."""

    exported: bool = False
    skipped: bool | None = None
    error: str | None = None
    parity: dict[str, Any] | None = None


class TrainingLineage(_Part):
    """When the training started and how long it took."""

    started_at: str | None = None
    fit_seconds: float | None = None
    total_seconds: float | None = None


class PreparationLineage(_Part):
    """What preparing the rows did before training (``data.drop_missing_target``...)."""

    dropped_missing_target: int = 0
    nested_columns_as_text: list[str] = Field(default_factory=list)


class ChecksLineage(_Part):
    """What the training-time checks found: suspected leaks, time ordering, warnings."""

    leaks: list[dict[str, Any]] = Field(default_factory=list)
    time_order: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)


class DerivedLineage(_Part):
    """A version made from another one (its parent: the teacher of a distilled model, the
    ensemble a pruned one was cut from) instead of trained from its spec alone.

    ``retrainable``: whether training the recorded spec rebuilds it exactly (pruning to
    the first k iterations does; reweighted trees and distilled students do not, so
    ``reproduce`` checks the parent instead).
    """

    method: str
    parent: str
    parent_fingerprint: str | None = None
    retrainable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class StatefulLineage(_Part):
    """Whether a retrained version continued from the production model, how, or why not.

    ``method``: ``warm_start`` (scikit-learn estimators that take it), ``init_model``
    (LightGBM), ``xgb_model`` (XGBoost) or ``none`` (trained from scratch);
    ``reason`` says why, in words.
    """

    continued: bool = False
    method: str = "none"
    parent: str | None = None
    reason: str = ""


class RetrainLineage(_Part):
    """Why and from what ``modelyard retrain`` built a version.

    ``trigger`` is the trigger that started it (``manual``, ``schedule``, ``drift``,
    ``performance`` or ``labels``); ``reasons`` every declared trigger that was due,
    in words; ``production`` the version in production it was compared with;
    ``source_rows`` and ``log_rows`` how many training rows came from the source (read
    as of ``as_of``) and from the labelled prediction log (labels received up to
    ``labels_through``).
    """

    trigger: str
    reasons: list[str] = Field(default_factory=list)
    at: str
    production: str | None = None
    as_of: str | None = None
    source_rows: int = 0
    log_rows: int = 0
    labels_through: str | None = None
    stateful: StatefulLineage = Field(default_factory=StatefulLineage)


class Lineage(_Part):
    """What a version was built from (see the module docstring for versions).

    Example:
        >>> Lineage.from_stored({"seed": 3}).schema_version   # a lineage stored before 2
        1
        >>> Lineage(seed=3).to_stored()["schema_version"]
        2
    """

    schema_version: int = LINEAGE_SCHEMA_VERSION
    project_dir: str | None = None
    spec_path: str | None = None
    spec_digest: str | None = None
    seed: int | None = None
    data: DataLineage = Field(default_factory=DataLineage)
    features: FeatureLineage = Field(default_factory=FeatureLineage)
    model: ModelLineage = Field(default_factory=ModelLineage)
    #: The recorded input schema (``modelyard.data.schema.DataSchema`` as JSON), kept as
    #: JSON here so the registry does not depend on the data layer's record.
    data_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    code: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    predictions: PredictionsLineage = Field(default_factory=PredictionsLineage)
    onnx: OnnxLineage | None = None
    training: TrainingLineage | None = None
    preparation: PreparationLineage | None = None
    checks: ChecksLineage | None = None
    derived: DerivedLineage | None = None
    retrain: RetrainLineage | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Lineage:
        """The lineage of a stored version's JSON.

        A lineage without ``schema_version`` is version 1 (written before this model):
        its unknown keys are dropped, at any depth, instead of refused. Later versions are
        validated strictly.

        Raises:
            pydantic.ValidationError: a versioned lineage that does not match the model.
        """
        if "schema_version" in stored:
            return cls.model_validate(stored)
        return cls.model_validate({**_known(cls, stored), "schema_version": 1})

    def to_stored(self) -> dict[str, Any]:
        """The JSON the registry stores (the shape of version 1, plus ``schema_version``;
        parts never written are left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True) | {
            "schema_version": self.schema_version
        }


def _known(model: type[BaseModel], stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with only the keys ``model`` (and its nested parts) declares."""
    known: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in stored:
            continue
        value = stored[key]
        part = _part_type(field.annotation)
        if part is not None and isinstance(value, dict):
            value = _known(part, value)
        known[key] = value
    return known


def _part_type(annotation: Any) -> type[BaseModel] | None:
    """The lineage part a field holds (``X`` or ``X | None``), if it holds one."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, _Part):
            return candidate
    return None


def capture_environment() -> dict[str, Any]:
    """Python, OS and every installed distribution with its version."""
    packages: dict[str, str] = {}
    # distributions() walks sys.path in order: the first one found is the one imported.
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(_canonical(name), dist.version)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "packages": dict(sorted(packages.items())),
    }


def capture_git(folder: Path) -> dict[str, Any]:
    """The git commit of ``folder`` and whether its work tree has uncommitted changes.

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout or without git.
    """
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        status = _git(folder, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status)}


def compare_environments(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human lines for each difference in Python, OS or package versions."""
    lines: list[str] = []
    for key in ("python", "implementation", "os", "machine"):
        if recorded.get(key) != current.get(key):
            lines.append(f"{key}: recorded {recorded.get(key)}, now {current.get(key)}")
    old: dict[str, str] = recorded.get("packages", {})
    new: dict[str, str] = current.get("packages", {})
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            was = old.get(name, "not installed")
            now = new.get(name, "not installed")
            lines.append(f"package {name}: recorded {was}, now {now}")
    return lines


def predictions_fingerprint(values: np.ndarray, proba: np.ndarray | None = None) -> str:
    """sha256 of the predictions' exact bytes (float64 little-endian, or UTF-8 labels).

    Exact bytes, not rounded values: two builds that agree to the last bit are the
    same model; anything else is reported with its size by ``reproduce``.
    """
    digest = hashlib.sha256()
    digest.update(_array_bytes(values))
    if proba is not None:
        digest.update(b"|proba|")
        digest.update(np.ascontiguousarray(proba, dtype="<f8").tobytes())
    return digest.hexdigest()


def _array_bytes(values: np.ndarray) -> bytes:
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array, dtype="<f8").tobytes()
    return "\x1f".join(str(v) for v in array.tolist()).encode("utf-8")


def _git(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(folder), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.stdout.strip()


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
