"""Summaries of a window of logged rows, built chunk by chunk in bounded memory.

:class:`WindowSummary` takes the rows of a window one chunk (a segment, or part of one)
at a time and keeps only what the checks need: per column, counts over the reference
bins or categories, missing, unseen, out-of-range and unparsable counts
(:class:`~modelyard.monitoring.columns.ColumnCounts`); a uniform
sample of at most ``sample_rows`` whole rows (:class:`~modelyard.monitoring.sample.RowSample`:
bottom-k sampling on random keys); and the labelled rows' label and prediction.
Everything else is dropped with the chunk, so memory does not grow with the window.
:func:`assess` turns a summary into a :class:`~modelyard.monitoring.results.WindowReport`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.monitoring.columns import ColumnCounts, plain, plain_arrow
from modelyard.monitoring.drift import (
    MonitorConfig,
    categorical_tests,
    correct,
    domain_classifier,
    numeric_tests,
)
from modelyard.monitoring.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    ReferenceProfile,
    numeric_values,
)
from modelyard.monitoring.results import (
    ColumnDrift,
    ColumnQuality,
    EstimatedPerformance,
    Histogram,
    Performance,
    WindowReport,
)
from modelyard.monitoring.sample import RowSample, TableSample
from modelyard.monitoring.skew import Replay, skew_check
from modelyard.predlog.tables import PROBA_PREFIX

__all__ = ["PREDICTION", "WindowSummary", "assess", "kinds_of"]

logger = logging.getLogger(__name__)

#: The name the predictions go by among a summary's columns.
PREDICTION = "prediction"
_EXAMPLES = 5  # unseen categories named per column
_CATEGORIES = 12  # categories a histogram shows by name; the rest are "other"


def kinds_of(profile: ReferenceProfile) -> dict[str, FeatureKind]:
    """The comparison kind of each feature of ``profile``."""
    return {name: feature.kind for name, feature in profile.features.items()}


class WindowSummary:
    """What the checks need of one window of rows; add chunks with :meth:`add`.

    Args:
        profile: the version's reference profile.
        config: the sample size.
        start: the window's start (time windows), for the report.
        end: the window's end (time windows), for the report.
        seed: seeds the row sample, so a run is repeatable.
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        config: MonitorConfig,
        start: datetime | None = None,
        end: datetime | None = None,
        seed: int = 0,
    ) -> None:
        self.profile = profile
        self.config = config
        self.start = start
        self.end = end
        self.rows = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self._columns = {
            name: ColumnCounts(feature, feature.kind) for name, feature in profile.features.items()
        }
        self._prediction = ColumnCounts(profile.prediction, profile.prediction.kind)
        self._sample: RowSample | TableSample = RowSample(
            config.sample_rows, np.random.default_rng(seed)
        )
        self._frame: pd.DataFrame | None = None  # the Arrow sample in pandas, once read
        self._labelled: list[pd.DataFrame] = []

    def add(
        self,
        features: pd.DataFrame,
        predictions: pd.Series | None = None,
        *,
        proba: pd.DataFrame | None = None,
        labelled: pd.DataFrame | None = None,
        received_at: pd.Series | None = None,
    ) -> None:
        """Add a chunk of rows.

        Args:
            features: the rows' inputs, one column per profiled feature (absent columns
                count as missing).
            predictions: the rows' predictions.
            proba: a classifier's logged probabilities, columns ``proba.<class>``
                (kept in the sample for the estimate before labels and the skew check).
            labelled: the rows whose label arrived: columns ``label``, ``label_float``,
                ``prediction`` and, for classifiers, the class probabilities.
            received_at: when the rows were received (for the window's first and last).
        """
        count = len(features)
        if count == 0:
            return
        self.rows += count
        if received_at is not None and len(received_at):
            first, last = received_at.min().to_pydatetime(), received_at.max().to_pydatetime()
            self.first_at = first if self.first_at is None else min(self.first_at, first)
            self.last_at = last if self.last_at is None else max(self.last_at, last)
        for name, column in self._columns.items():
            if name in features.columns:
                column.add(features[name])
            else:
                column.add(pd.Series(None, index=features.index, dtype=object))
        if predictions is not None:
            self._prediction.add(predictions)

        def rows(at: np.ndarray) -> pd.DataFrame:
            """The chunk's rows at ``at`` that enter the sample: the features, the
            prediction and the probabilities."""
            taken = features.iloc[at].reset_index(drop=True)
            frame = {
                name: plain(taken[name])
                if name in taken.columns
                else pd.Series(None, index=taken.index, dtype=object)
                for name in self._columns
            }
            if predictions is not None:
                frame[PREDICTION] = predictions.to_numpy()[at]
            if proba is not None:
                for name in proba.columns:
                    frame[name] = proba[name].to_numpy()[at]
            return pd.DataFrame(frame, index=taken.index)

        self._sample.offer(count, rows)
        if labelled is not None and len(labelled):
            self._labelled.append(labelled)

    def add_arrow(self, table: pa.Table, *, labelled: pd.DataFrame | None = None) -> None:
        """Add a chunk of rows as read from the prediction log, without turning the
        whole chunk into pandas (that conversion cost more than every count of it).

        The same as :meth:`add` of the chunk's pandas form: counts come from the Arrow
        buffers (:meth:`ColumnCounts.add_arrow`), and only the rows entering the sample are
        converted.

        Args:
            table: the rows: the inputs under their own names (absent ones count as
                missing), ``prediction``, ``proba.<class>`` and ``received_at``.
            labelled: the rows whose label arrived (as :meth:`add` says).
        """
        count = table.num_rows
        if count == 0:
            return
        self.rows += count
        names = set(table.column_names)
        if "received_at" in names:
            low, high = pc.min_max(table["received_at"]).values()
            first, last = low.as_py(), high.as_py()
            self.first_at = first if self.first_at is None else min(self.first_at, first)
            self.last_at = last if self.last_at is None else max(self.last_at, last)
        for name, column in self._columns.items():
            if name in names:
                column.add_arrow(table[name])
            else:
                column.add_missing(count)
        logged = [n for n in table.column_names if n == PREDICTION or n.startswith(PROBA_PREFIX)]
        if PREDICTION in names:
            self._prediction.add_arrow(table[PREDICTION])

        if not isinstance(self._sample, TableSample):
            if self._sample.seen:
                raise TypeError("a window's chunks are all pandas (add) or all Arrow (add_arrow)")
            self._sample = TableSample(self._sample.limit, self._sample.rng)
        wanted = [n for n in table.column_names if n in self._columns]
        kept = table.select(wanted + logged)
        self._sample.offer(count, kept.take)
        self._frame = None
        if labelled is not None and len(labelled):
            self._labelled.append(labelled)

    @property
    def sample(self) -> pd.DataFrame:
        """The uniform sample of the window's rows (features and prediction)."""
        if not isinstance(self._sample, TableSample):
            return self._sample.frame
        if self._frame is None:
            self._frame = self._sample_frame(self._sample.frame)
        return self._frame

    def _sample_frame(self, table: pa.Table) -> pd.DataFrame:
        """The Arrow sample as :meth:`add` would have made it of the same rows."""
        if not table.num_columns:
            return pd.DataFrame()
        index = pd.RangeIndex(table.num_rows)
        names = set(table.column_names)
        frame = {
            name: plain_arrow(table[name]).set_axis(index)
            if name in names
            else pd.Series(None, index=index, dtype=object)
            for name in self._columns
        }
        for name in table.column_names:
            if name == PREDICTION or name.startswith(PROBA_PREFIX):
                frame[name] = pd.Series(table[name].to_pandas().to_numpy(), index=index)
        return pd.DataFrame(frame, index=index)

    def subsample(self, rows: int) -> pd.DataFrame:
        """A uniform sample of at most ``rows`` of the window's rows: those with the
        smallest random keys (the sample itself is in no random order)."""
        kept = np.argsort(self._sample.keys, kind="stable")[:rows]
        return self.sample.iloc[kept].reset_index(drop=True)

    def labelled(self) -> pd.DataFrame:
        """The labelled rows of the window."""
        return pd.concat(self._labelled, ignore_index=True) if self._labelled else pd.DataFrame()

    def column(self, name: str) -> ColumnCounts:
        return self._prediction if name == PREDICTION else self._columns[name]


def assess(
    summary: WindowSummary,
    *,
    reference_sample: pd.DataFrame | None = None,
    replay: Replay | None = None,
    seed: int = 0,
) -> WindowReport:
    """Drift, data quality, skew and performance (realised and estimated) of a window.

    A window with fewer than ``config.min_rows`` rows is reported as too small: its
    quality, skew and performance are shown, its drift is not tested.

    Args:
        summary: the window.
        reference_sample: reference rows (the profiled features) for the multivariate
            check; without them it is skipped.
        replay: the version's reference pipeline for the skew check; without it the
            check is skipped.
        seed: seeds the domain classifier and the estimate's draws.
    """
    profile, config = summary.profile, summary.config
    # Bonferroni across the columns: a missing-rate problem must not be chance.
    level = config.alpha / max(len(profile.features), 1)
    quality = [_quality(name, summary.column(name), config, level) for name in profile.features]
    labelled = summary.labelled()
    performance = _performance(summary, labelled)
    skew = None
    if replay is not None and config.skew_rows and len(summary.sample):
        skew = skew_check(replay, summary.subsample(config.skew_rows), profile.classes)
    too_small = summary.rows < config.min_rows
    base = WindowReport(
        start=summary.start or summary.first_at,
        end=summary.end or summary.last_at,
        rows=summary.rows,
        too_small=too_small,
        quality=quality,
        performance=performance,
        estimated=_estimate(summary, labelled, performance, seed),
        skew=skew,
    )
    if too_small:
        return base
    sample = summary.sample
    features = correct([_drift(name, summary, sample) for name in profile.features], config)
    prediction = None
    if PREDICTION in sample.columns:
        prediction = correct([_drift(PREDICTION, summary, sample)], config)[0]
    multivariate = None
    rows = config.multivariate_rows
    if rows and reference_sample is not None and len(reference_sample) >= config.min_rows:
        kinds = kinds_of(profile)
        current = summary.subsample(rows)[list(kinds)]
        multivariate = domain_classifier(
            reference_sample[list(kinds)].iloc[:rows],
            current,
            kinds,
            profile.features,
            config=config,
            seed=seed,
        )
    return base.model_copy(
        update={"features": features, "prediction": prediction, "multivariate": multivariate}
    )


def _drift(name: str, summary: WindowSummary, sample: pd.DataFrame) -> ColumnDrift:
    column = summary.column(name)
    profile, config = column.profile, summary.config
    if isinstance(profile, CategoricalProfile):
        if profile.too_many:
            return _skipped(name, column, "more categories than are compared")
        counts = dict(zip(profile.counts, column.bins.tolist(), strict=True))
        tests = categorical_tests(
            profile, counts=counts, unseen=column.unseen, missing=column.missing, config=config
        )
    else:
        if not profile.bin_counts and not profile.quantiles:
            return _skipped(name, column, "no values in the reference")
        values = numeric_values(sample[name], column.kind)
        tests = numeric_tests(
            profile,
            bin_counts=np.asarray([*column.bins, column.unparsed]),
            sample=values[~np.isnan(values)],
            config=config,
        )
    return ColumnDrift(
        column=name,
        kind=column.kind,
        rows=column.rows,
        tests=tests,
        drift=False,
        histogram=_histogram(column),
    )


def _histogram(column: ColumnCounts) -> Histogram:
    """The column's shares beside the reference's, for the report's charts."""
    profile = column.profile
    if isinstance(profile, NumericProfile):
        edges = [f"{e:.4g}" for e in profile.bin_edges]
        labels = [f"≤ {edges[0]}"] if edges else ["all"]
        labels += [f"{low}–{high}" for low, high in zip(edges, edges[1:], strict=False)]
        labels += [f"> {edges[-1]}"] if edges else []
        reference = [*profile.bin_counts, profile.missing]
        current = [*column.bins.tolist(), column.unparsed]
        labels.append("missing")
    else:
        ranked = sorted(profile.counts, key=lambda k: -profile.counts[k])
        shown, rest = ranked[:_CATEGORIES], ranked[_CATEGORIES:]
        counts = dict(zip(profile.counts, column.bins.tolist(), strict=True))
        labels = [*shown, "other", "unseen", "missing"]
        reference = [profile.counts[k] for k in shown]
        reference += [sum(profile.counts[k] for k in rest), 0, profile.missing]
        current = [counts[k] for k in shown]
        current += [sum(counts[k] for k in rest), column.unseen, column.missing]
    return Histogram(labels=labels, reference=_shares(reference), current=_shares(current))


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def _skipped(name: str, column: ColumnCounts, why: str) -> ColumnDrift:
    return ColumnDrift(
        column=name, kind=column.kind, rows=column.rows, tests=[], drift=False, skipped=why
    )


def _quality(name: str, column: ColumnCounts, config: MonitorConfig, level: float) -> ColumnQuality:
    profile, rows = column.profile, max(column.rows, 1)
    reference_rate = profile.missing / max(profile.rows, 1)
    rate = column.missing / rows
    tolerance = config.quality_tolerance
    problems = []
    if rate > reference_rate + tolerance and _more_than_chance(
        column.missing, column.rows, reference_rate, level
    ):
        problems.append(f"missing in {rate:.1%} of rows (reference {reference_rate:.1%})")
    if column.type_problems:
        problems.append(f"{column.type_problems} values of the wrong type")
    if column.unseen / rows > tolerance:
        shown = ", ".join(repr(k) for k, _ in column.examples.most_common(_EXAMPLES))
        problems.append(f"{column.unseen} rows with categories never seen in training: {shown}")
    if column.out_of_range / rows > tolerance and isinstance(profile, NumericProfile):
        problems.append(
            f"{column.out_of_range} values outside the training range "
            f"[{profile.min:.6g}, {profile.max:.6g}]"
        )
    return ColumnQuality(
        column=name,
        rows=column.rows,
        missing_rate=rate,
        reference_missing_rate=reference_rate,
        unseen_categories=column.unseen,
        unseen_examples=[k for k, _ in column.examples.most_common(_EXAMPLES)],
        out_of_range=column.out_of_range,
        type_problems=column.type_problems,
        problems=problems,
    )


def _more_than_chance(count: int, rows: int, rate: float, level: float) -> bool:
    """Whether ``count`` of ``rows`` is significantly more than a share ``rate`` would give."""
    from scipy.stats import binomtest

    if rate <= 0.0:
        return count > 0
    return bool(binomtest(count, rows, rate, alternative="greater").pvalue < level)


def _performance(summary: WindowSummary, labelled: pd.DataFrame) -> Performance | None:
    if labelled.empty:
        return None
    from modelyard.monitoring.performance import window_metrics  # sklearn: only with labels

    profile = summary.profile
    return Performance(
        labelled_rows=len(labelled),
        metrics=window_metrics(profile, labelled),
        reference_metrics=dict(profile.metrics),
    )


def _estimate(
    summary: WindowSummary, labelled: pd.DataFrame, performance: Performance | None, seed: int
) -> EstimatedPerformance | None:
    """A classifier's performance estimated from its logged probabilities (CBPE), and
    where labels arrived, the estimate on those rows beside the realised metrics."""
    from modelyard.monitoring.estimate import estimate_metrics, positive_index, probabilities

    profile, sample = summary.profile, summary.sample
    classes = profile.classes
    if profile.task == "regression" or not classes or PREDICTION not in sample.columns:
        return None
    proba = probabilities(sample, classes, PROBA_PREFIX)
    if proba is None:
        return None
    metrics = list(profile.metrics)
    at = positive_index(classes, profile.positive)
    calibration = profile.calibration
    estimated = estimate_metrics(
        metrics,
        proba=proba,
        predicted=sample[PREDICTION].astype(str).tolist(),
        classes=classes,
        positive_at=at,
        calibration=calibration,
        seed=seed,
    )
    labelled_proba = None if performance is None else probabilities(labelled, classes, PROBA_PREFIX)
    if performance is None or labelled_proba is None:
        return estimated
    on_labelled = estimate_metrics(
        metrics,
        proba=labelled_proba,
        predicted=labelled["prediction"].astype(str).tolist(),
        classes=classes,
        positive_at=at,
        calibration=calibration,
        seed=seed,
        realised=performance.metrics,
    )
    return estimated.model_copy(
        update={"on_labelled": on_labelled, "realised_within": on_labelled.realised_within}
    )
