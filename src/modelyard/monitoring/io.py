"""Monitoring's reads and writes: reference profiles in the registry, the log by segment.

A version's profile is stored as its ``profile`` artifact (JSON, content-addressed and
checksummed like every artifact). :func:`open_reference` reads it, or computes it the
first time from the version's frozen ``snapshot`` (the training rows are the rows not
in the ``evaluation`` artifact: the split covers every row) and its ``evaluation``
predictions, both read through :meth:`Registry.read_artifact`, which refuses bytes
whose checksum does not match.

:func:`read_segments` reads the prediction log one segment at a time into Arrow, only the
columns monitoring needs, so memory holds two segments' columns at once (the one being
counted and the next, read meanwhile).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelyard.errors import DataError, RegistryError
from modelyard.monitoring.profile import (
    PROFILE_FORMAT,
    ReferenceProfile,
    build_profile,
    feature_kinds,
)
from modelyard.predlog import store
from modelyard.predlog.tables import INPUT_PREFIX, TIMESTAMP, label_text
from modelyard.registry.registry import ArtifactInput, ModelVersion, Registry
from modelyard.settings import Settings

__all__ = [
    "PROFILE_ROLE",
    "Reference",
    "logged_segments",
    "logged_versions",
    "open_reference",
    "read_segments",
]

logger = logging.getLogger(__name__)

PROFILE_ROLE = "profile"
_PROBA_PREFIX = "proba_"  # the evaluation artifact's probability columns


@dataclass(frozen=True)
class Reference:
    """A version's profile, its digest, and a sample of its training rows (or None)."""

    profile: ReferenceProfile
    digest: str
    sample: pd.DataFrame | None


def open_reference(
    registry: Registry, version: ModelVersion, *, sample_rows: int, actor: str, seed: int = 0
) -> Reference:
    """The reference of ``version``, computing and storing its profile if it has none.

    Args:
        registry: the registry holding the version.
        version: the version.
        sample_rows: training rows to sample for the multivariate check; 0: none.
        actor: who stores a new profile, for the audit trail.
        seed: seeds the sample.

    Raises:
        IntegrityError: an artifact's bytes do not match their checksum.
        DataError: the version lacks the artifacts a profile is computed from, or its
            stored profile is unreadable.
    """
    training: pd.DataFrame | None = None
    if PROFILE_ROLE in version.artifacts:
        profile = _read_profile(registry, version)
    else:
        snapshot, evaluation = _frozen_rows(registry, version)
        training = _training_rows(snapshot, evaluation)
        profile = _compute_profile(version, training, evaluation)
        version = _store_profile(registry, version, profile, actor=actor)
    sample = None
    if sample_rows:
        if training is None:
            training = _training_rows(*_frozen_rows(registry, version))
        columns = list(profile.features)
        count = min(sample_rows, len(training))
        sample = training[columns].sample(n=count, random_state=seed).reset_index(drop=True)
    return Reference(profile=profile, digest=version.artifacts[PROFILE_ROLE].digest, sample=sample)


def _read_profile(registry: Registry, version: ModelVersion) -> ReferenceProfile:
    from pydantic import ValidationError

    data = registry.read_artifact(version, PROFILE_ROLE)
    try:
        profile = ReferenceProfile.model_validate_json(data)
    except ValidationError as exc:
        raise DataError(
            f"the profile artifact of {version.ref} is not a reference profile this "
            f"modelyard reads ({exc.error_count()} problems, first: {exc.errors()[0]['msg']})"
        ) from None
    if profile.format != PROFILE_FORMAT:
        raise DataError(
            f"the profile of {version.ref} has format {profile.format}; this modelyard reads "
            f"format {PROFILE_FORMAT}: upgrade modelyard"
        )
    return profile


def _frozen_rows(registry: Registry, version: ModelVersion) -> tuple[pd.DataFrame, pd.DataFrame]:
    from modelyard.data.snapshot import frame_from_parquet

    missing = [role for role in ("snapshot", "evaluation") if role not in version.artifacts]
    if missing:
        raise DataError(
            f"{version.ref} has no {' and no '.join(missing)} artifact, so its reference "
            "profile cannot be computed; train it again with this modelyard"
        )
    snapshot = frame_from_parquet(registry.read_artifact(version, "snapshot"))
    evaluation = pd.read_parquet(pa.BufferReader(registry.read_artifact(version, "evaluation")))
    return snapshot, evaluation


def _training_rows(snapshot: pd.DataFrame, evaluation: pd.DataFrame) -> pd.DataFrame:
    """The rows the version was fitted on: those of the snapshot not evaluated on."""
    train = np.ones(len(snapshot), dtype=bool)
    train[evaluation["row"].to_numpy(dtype=np.int64)] = False
    return snapshot.iloc[np.flatnonzero(train)].reset_index(drop=True)


def _compute_profile(
    version: ModelVersion, training: pd.DataFrame, evaluation: pd.DataFrame
) -> ReferenceProfile:
    features: dict[str, Any] = version.lineage.get("features", {})
    order = [c for c in features.get("feature_order", []) if c in training.columns]
    if not order:
        raise DataError(f"the lineage of {version.ref} records no input features to profile")
    task = str(version.spec.get("task", "regression"))
    kinds = feature_kinds(training[order], categorical=features.get("categorical", []))
    classes = None
    predictions = evaluation["prediction"]
    if task != "regression":
        named = [c[len(_PROBA_PREFIX) :] for c in evaluation.columns if c.startswith(_PROBA_PREFIX)]
        found = named or sorted({str(label_text(v)) for v in predictions})
        classes = [str(label_text(c)) for c in found]
        predictions = predictions.map(label_text)
    metrics = {k: v for k, v in version.metrics.items() if isinstance(v, int | float | None)}
    positive, calibration = _calibration(version, evaluation, classes)
    return build_profile(
        model=version.name,
        version=version.version,
        task=task,
        train=training,
        kinds=kinds,
        predictions=predictions,
        classes=classes,
        metrics=metrics,
        positive=positive,
        calibration=calibration,
    )


def _calibration(
    version: ModelVersion, evaluation: pd.DataFrame, classes: list[str] | None
) -> tuple[str | None, dict[str, list[list[float]]] | None]:
    """A classifier's positive class (text) and calibration maps from its evaluation rows."""
    from modelyard.monitoring.estimate import fit_calibration, positive_index, probabilities

    if not classes:
        return None, None
    named = version.spec.get("positive_class")
    positive = None if named is None else str(label_text(named))
    proba = probabilities(evaluation, classes, _PROBA_PREFIX)
    if proba is None or "target" not in evaluation.columns:
        return positive, None
    truth = [str(label_text(v)) for v in evaluation["target"]]
    at = positive_index(classes, positive)
    return positive, fit_calibration(truth, proba, classes, positive_at=at)


def _store_profile(
    registry: Registry, version: ModelVersion, profile: ReferenceProfile, *, actor: str
) -> ModelVersion:
    data = profile.model_dump_json().encode("utf-8")
    artifact = ArtifactInput(
        data=data, media_type="application/json", extra={"format": PROFILE_FORMAT}
    )
    try:
        stored = registry.add_artifact(version, PROFILE_ROLE, artifact, actor=actor)
    except RegistryError:
        # Another monitor stored it first: use theirs (the same bytes, if the same code).
        stored = registry.get_version(version.ref)
        if PROFILE_ROLE not in stored.artifacts:
            raise
    else:
        logger.info("stored the reference profile of %s (%d bytes)", version.ref, len(data))
    return stored


# -- the log ------------------------------------------------------------------------


def read_segments(
    settings: Settings,
    model: str,
    version: int,
    *,
    features: list[str],
    start: datetime | None,
    end: datetime | None,
    ids: bool = True,
) -> Iterator[tuple[store.SegmentRecord, pa.Table]]:
    """Each prediction segment of ``model`` ``version`` in ``[start, end)``, oldest first.

    Yields the segment's index record and an Arrow table of its rows received in the
    range, sorted by time: request_id and row (unless ``ids`` is false), received_at,
    prediction, ``proba.<class>``, and the inputs named in ``features`` under their own
    names (absent inputs are left out; text inputs dictionary-encoded, as Parquet
    stores them). The rows stay in Arrow: turning a whole segment into pandas cost more
    than every check of it.

    Raises:
        DataError: a segment the index lists is missing or unreadable.
    """
    home = store.home_of(settings)
    records = logged_segments(settings, model, version=version, start=start, end=end)
    wanted = {INPUT_PREFIX + name for name in features}
    base = (
        ("request_id", "row", "received_at", "prediction") if ids else ("received_at", "prediction")
    )

    def load(record: store.SegmentRecord) -> pa.Table:
        path = home / record.path
        try:
            # One Parquet file, not a dataset: pq.read_table's dataset layer cost a third
            # of the read. Text inputs stay dictionary-encoded: decoding them to strings
            # was most of the read, and their categories are counted from the codes.
            schema = pq.read_schema(path)
            columns = [
                n for n in schema.names if n in base or n.startswith("proba.") or n in wanted
            ]
            texts = [n for n in columns if n in wanted and pa.types.is_string(schema.field(n).type)]
            with pq.ParquetFile(path, read_dictionary=texts) as parquet:
                table = parquet.read(columns=columns)
        except FileNotFoundError:
            raise DataError(
                f"segment {path} of model {model!r}, listed in the prediction log index, is "
                "missing; run modelyard.predlog.repair_index(settings)"
            ) from None
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"segment {path} of model {model!r} is unreadable: {exc}") from exc
        table = _within(table, record, start, end)
        table = table.rename_columns(
            [c[len(INPUT_PREFIX) :] if c in wanted else c for c in table.column_names]
        )
        moments = table["received_at"].to_numpy()
        if moments.size > 1 and np.any(moments[1:] < moments[:-1]):
            table = table.sort_by("received_at")  # stable: rows of one time keep their order
        return table

    # The next segment is read while the caller counts this one: Arrow decodes without
    # the GIL, so the read and the counting share the cores. Two segments at most are
    # held at once.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-monitor-read") as pool:
        pending = pool.submit(load, records[0]) if records else None
        for position, record in enumerate(records):
            assert pending is not None
            table = pending.result()
            following = position + 1
            pending = pool.submit(load, records[following]) if following < len(records) else None
            yield record, table


def _within(
    table: pa.Table, record: store.SegmentRecord, start: datetime | None, end: datetime | None
) -> pa.Table:
    """The rows of ``table`` received in ``[start, end)`` (all of them when the index
    says the whole segment is)."""
    low, high = store.as_utc(record.min_received_at), store.as_utc(record.max_received_at)
    keep = None
    moments = table["received_at"]
    if start is not None and low < store.as_utc(start):
        keep = pc.greater_equal(moments, pa.scalar(store.as_utc(start), TIMESTAMP))
    if end is not None and high >= store.as_utc(end):
        before = pc.less(moments, pa.scalar(store.as_utc(end), TIMESTAMP))
        keep = before if keep is None else pc.and_(keep, before)
    return table if keep is None else table.filter(keep)


def logged_versions(
    settings: Settings, model: str, *, start: datetime | None, end: datetime | None
) -> list[int]:
    """The versions of ``model`` with logged rows in ``[start, end)``, per the index."""
    records = logged_segments(settings, model, start=start, end=end)
    return sorted({record.version for record in records if record.version is not None})


def logged_segments(
    settings: Settings,
    model: str,
    *,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[store.SegmentRecord]:
    """The index records of ``model``'s prediction segments in ``[start, end)``, oldest
    first (by their earliest row)."""
    engine = store.open_index(settings)
    try:
        return store.find_segments(
            engine, "predictions", model, version=version, start=start, end=end
        )
    finally:
        engine.dispose()
