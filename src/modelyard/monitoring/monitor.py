"""``monitor``: compare windows of a model's prediction log with its versions' references.

For each version (the one named, or every version with rows in the range), the log is
read one segment at a time (:func:`~modelyard.monitoring.io.read_segments`); each
segment's rows are added to the summary of the window they fall in, and a time window
is assessed and dropped as soon as the segments still to come start after its end
(segments come oldest first by their earliest row), so memory holds the summaries of
the windows still open, not the rows. Labels (the latest per request id and row, from
:func:`~modelyard.predlog.read_feedback`) are joined to each segment's rows.

Row windows follow the order of the segments and, within one, of the rows' times: rows
written by several processes at the same time may be counted a little out of order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.monitoring.drift import MonitorConfig
from modelyard.monitoring.io import Reference, logged_versions, open_reference, read_segments
from modelyard.monitoring.results import MonitorReport, VersionReport, WindowReport
from modelyard.monitoring.skew import Replay, replay_tolerance
from modelyard.monitoring.summary import WindowSummary, assess
from modelyard.monitoring.windows import WindowSpec
from modelyard.predlog import store
from modelyard.predlog.tables import PROBA_PREFIX
from modelyard.registry.refs import parse_ref
from modelyard.registry.registry import ModelVersion, Registry
from modelyard.settings import Settings

__all__ = ["FailOn", "monitor", "window_drifts"]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

FailOn = Literal["feature", "prediction", "multivariate", "skew", "any", "none"]


def window_drifts(window: WindowReport, fail_on: FailOn) -> bool:
    """Whether ``window`` breaks the rule ``fail_on`` (a too-small window never does)."""
    if fail_on == "none":
        return False
    if fail_on == "skew" or (fail_on == "any" and window.skewed):
        return window.skewed  # replayed rows, not a statistical test: any window counts
    if window.too_small:
        return False
    found = {
        "feature": window.feature_drift,
        "prediction": window.prediction_drift,
        "multivariate": window.multivariate_drift,
    }
    return any(found.values()) if fail_on == "any" else found[fail_on]


def monitor(
    settings: Settings,
    ref: str,
    *,
    window: WindowSpec,
    since: datetime | None = None,
    until: datetime | None = None,
    config: MonitorConfig | None = None,
    fail_on: FailOn = "feature",
    actor: str = "monitor",
) -> MonitorReport:
    """Compare the logged rows of ``ref`` in ``[since, until)`` with their references.

    Args:
        settings: where the registry and the prediction log are.
        ref: ``NAME`` (every version with logged rows), ``NAME:VERSION`` or ``NAME@ALIAS``.
        window: the window size (see :func:`~modelyard.monitoring.windows.parse_window`).
        since: only rows received at or after this time.
        until: only rows received before this time.
        config: the checks' thresholds.
        fail_on: which findings make ``drift`` true.
        actor: who stores a missing reference profile, for the audit trail.

    Raises:
        ModelNotFoundError: no such model, version or alias.
        IntegrityError: a version's artifacts fail their checksum.
        DataError: a segment is unreadable, or a version cannot be profiled.
    """
    from modelyard.predlog import read_feedback

    config = config or MonitorConfig()
    target = parse_ref(ref)
    with Registry.open(settings) as registry:
        named = registry.get_version(ref)  # raises for an unknown model or version
        if target.version is None and target.alias is None:
            numbers = logged_versions(settings, target.name, start=since, end=until)
            versions = [registry.get_version(f"{target.name}:{n}") for n in numbers]
        else:
            versions = [named]
        references = [
            open_reference(registry, v, sample_rows=config.multivariate_rows, actor=actor)
            for v in versions
        ]
        replays = [_replay(registry, v) if config.skew_rows else None for v in versions]
    labels = read_feedback(settings, target.name)[["request_id", "row", "label", "label_float"]]
    reports = []
    for version, reference, replay in zip(versions, references, replays, strict=True):
        windows = list(
            _windows(
                settings,
                version.name,
                version.version,
                reference,
                replay,
                window,
                since,
                until,
                config,
                labels,
            )
        )
        reports.append(
            VersionReport(ref=version.ref, profile_digest=reference.digest, windows=windows)
        )
    drift = any(window_drifts(w, fail_on) for r in reports for w in r.windows)
    return MonitorReport(
        model=target.name,
        window=window.text,
        since=since,
        until=until,
        fail_on=fail_on,
        versions=reports,
        drift=drift,
    )


def _windows(
    settings: Settings,
    model: str,
    version: int,
    reference: Reference,
    replay: Replay | None,
    window: WindowSpec,
    since: datetime | None,
    until: datetime | None,
    config: MonitorConfig,
    labels: pd.DataFrame,
) -> Iterator[WindowReport]:
    profile = reference.profile
    features = list(profile.features)
    labelled = _Labels(labels)
    segments = read_segments(
        settings,
        model,
        version,
        features=features,
        start=since,
        end=until,
        ids=not labels.empty,  # the ids only join labels
    )

    def finish(summary: WindowSummary, seed: int) -> WindowReport:
        return assess(summary, reference_sample=reference.sample, replay=replay, seed=seed)

    if window.rows is not None:
        index, current = 0, None
        for _, table in segments:
            position = 0
            while position < table.num_rows:
                if current is None:
                    current = WindowSummary(profile, config=config, seed=index)
                take = min(window.rows - current.rows, table.num_rows - position)
                _add(current, table.slice(position, take), labelled)
                position += take
                if current.rows == window.rows:
                    yield finish(current, index)
                    index, current = index + 1, None
        if current is not None:
            yield finish(current, index)
        return

    assert window.length is not None
    length = window.length // _MICROSECOND
    open_windows: dict[int, WindowSummary] = {}
    for record, table in segments:
        # Segments come ordered by their earliest row: a window ending before this one's
        # earliest row gets no more rows.
        horizon = store.as_utc(record.min_received_at)
        for key in sorted(open_windows):
            if open_windows[key].end <= horizon:  # type: ignore[operator]
                yield finish(open_windows.pop(key), key)
        # Microseconds since 1970 (the log's timestamps), cut as window_start cuts them.
        micros = pc.cast(table["received_at"], pa.int64()).to_numpy()
        keys = micros // length
        for key in np.unique(keys).tolist():
            summary = open_windows.get(key)
            if summary is None:
                start = _EPOCH + key * window.length  # what window_start gives its rows
                summary = WindowSummary(
                    profile, config=config, start=start, end=start + window.length, seed=key
                )
                open_windows[key] = summary
            _add(summary, table.filter(pa.array(keys == key)), labelled)
    for key in sorted(open_windows):
        yield finish(open_windows.pop(key), key)


class _Labels:
    """The labels to join to logged rows, and the set of their request ids."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        ids = np.asarray(frame["request_id"].unique(), dtype=object)
        self.request_ids = pa.array(ids, pa.string())


def _add(summary: WindowSummary, rows: pa.Table, labels: _Labels) -> None:
    """Add ``rows`` to ``summary``, with those of them whose label arrived."""
    labelled = None
    if len(labels.frame):
        logged = [c for c in rows.column_names if c == "prediction" or c.startswith(PROBA_PREFIX)]
        # Only the rows of requests with labels are turned into pandas for the join.
        candidates = rows.filter(pc.is_in(rows["request_id"], value_set=labels.request_ids))
        labelled = (
            candidates.select(["request_id", "row", *logged])
            .to_pandas()
            .merge(labels.frame, on=["request_id", "row"], how="inner", validate="many_to_one")
        )
    summary.add_arrow(rows, labelled=labelled)


def _replay(registry: Registry, version: ModelVersion) -> Replay:
    """The version's reference pipeline (checksum verified) and the parity tolerance
    recorded with its ONNX export, for the skew check."""
    from modelyard.models.runtime import SklearnRuntime
    from modelyard.registry.readers import ONNX_ROLE, load_version_pipeline

    features = list(version.lineage_record.features.feature_order)
    runtime = SklearnRuntime(load_version_pipeline(registry, version), features)
    onnx = version.artifacts.get(ONNX_ROLE)
    parity = onnx.extra.get("parity") if onnx is not None else None
    task = str(version.spec.get("task", "regression"))
    return Replay(
        runtime=runtime,
        features=features,
        task=task,
        tolerance=replay_tolerance(task, parity if isinstance(parity, dict) else None),
    )
