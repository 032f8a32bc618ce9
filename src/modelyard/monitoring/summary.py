"""Summaries of a window of logged rows, built chunk by chunk in bounded memory.

:class:`WindowSummary` takes the rows of a window one chunk (a segment, or part of one)
at a time and keeps only what the checks need: per column, counts over the reference
bins or categories, missing, unseen, out-of-range and unparsable counts; a uniform
sample of at most ``sample_rows`` whole rows (:class:`~modelyard.monitoring.sample.RowSample`:
bottom-k sampling on random keys); and the labelled rows' label and prediction.
Everything else is dropped with the chunk, so memory does not grow with the window.
:func:`assess` turns a summary into a :class:`~modelyard.monitoring.results.WindowReport`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.contract.text import category_texts
from modelyard.data.schema import category_keys
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
    FeatureProfile,
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


@dataclass
class _Column:
    """Running counts of one column over a window."""

    profile: FeatureProfile
    kind: FeatureKind
    rows: int = 0
    missing: int = 0
    type_problems: int = 0
    out_of_range: int = 0
    unseen: int = 0
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    examples: Counter[str] = field(default_factory=Counter)
    _index: dict[str, int] = field(default_factory=dict)
    _plans: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.profile, NumericProfile):
            self.bins = np.zeros(len(self.profile.bin_edges) + 1, np.int64)
        else:
            self.bins = np.zeros(len(self.profile.counts), np.int64)
            self._index = {key: i for i, key in enumerate(self.profile.counts)}

    def add(self, values: pd.Series) -> None:
        self.rows += len(values)
        profile = self.profile
        if isinstance(profile, NumericProfile):
            self._add_numbers(values, profile)
        elif profile.too_many:
            self.missing += int(values.isna().sum())
        elif isinstance(values.dtype, pd.CategoricalDtype):
            array = values.array
            self._add_codes(np.asarray(array.codes), array.categories.to_numpy())
        else:
            keys, counts = category_counts(values)
            self.missing += len(values) - int(counts.sum())
            self._add_counts(keys, counts)

    def add_arrow(self, values: pa.ChunkedArray) -> None:
        """Add a column of a prediction segment as Arrow read it: logged numbers
        (float64, null missing) and dictionary-encoded texts are counted from their
        buffers; any other type as the pandas column it converts to."""
        profile = self.profile
        if isinstance(profile, NumericProfile) and self.kind == "numeric":
            if pa.types.is_floating(values.type):
                self.rows += len(values)
                numbers = values.to_numpy().astype(np.float64, copy=False)  # null: NaN
                self._add_present(numbers[~np.isnan(numbers)], len(values), profile)
                return
        elif isinstance(profile, CategoricalProfile):
            if profile.too_many:
                self.rows += len(values)
                self.missing += values.null_count
                return
            if pa.types.is_dictionary(values.type):
                self.rows += len(values)
                codes, categories = dictionary_codes(values)
                self._add_codes(codes, categories)
                return
        self.add(values.to_pandas())

    def add_missing(self, rows: int) -> None:
        """Add ``rows`` rows without this column (an input the requests did not send)."""
        self.rows += rows
        self.missing += rows

    def _add_counts(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add the counts of distinct category texts (in order of first appearance)."""
        # A dict, not Index.get_indexer: a chunk has few distinct keys, and building
        # an Index of them cost more than counting the rows.
        at = np.asarray([self._index.get(key, -1) for key in keys.tolist()], np.int64)
        known = at >= 0
        np.add.at(self.bins, at[known], counts[known])
        self.unseen += int(counts[~known].sum())
        if len(self.examples) < 1000:  # bounded: a flood of new values keeps only some
            unseen = zip(keys[~known].tolist(), counts[~known].tolist(), strict=True)
            self.examples.update(dict(unseen))

    def _add_codes(self, codes: np.ndarray, categories: np.ndarray) -> None:
        """Add a categorical chunk (the log's text inputs) from its codes (-1: missing)
        into ``categories``: the texts of its categories and their reference bins are
        worked out once per distinct set of categories, and a chunk costs one
        ``bincount``."""
        key = tuple(categories.tolist())
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 64:  # bounded: segments usually share a few sets
                self._plans.clear()
            texts = category_texts(categories)
            at = np.asarray([self._index.get(text, -1) for text in texts.tolist()], np.int64)
            plan = self._plans[key] = (texts, at)
        texts, at = plan
        counts = np.bincount(codes + 1, minlength=len(categories) + 1)  # -1: missing
        self.missing += int(counts[0])
        counts = counts[1:]
        known = at >= 0
        np.add.at(self.bins, at[known], counts[known])
        if np.any(counts[~known]):
            seen = pd.unique(codes[codes >= 0])  # in order of first appearance
            new = seen[~known[seen]]
            keys, unseen = _merged(texts[new], counts[new])
            self._add_counts(keys, unseen)

    def _add_numbers(self, values: pd.Series, profile: NumericProfile) -> None:
        if self.kind == "numeric" and values.dtype == np.float64:
            # Logged numbers: NaN is missing, nothing is unparsable.
            numbers = values.to_numpy()
            present = numbers[~np.isnan(numbers)]
            self.missing += len(values) - present.size
        else:
            absent = values.isna().to_numpy()
            self.missing += int(absent.sum())
            numbers = numeric_values(values, self.kind)
            unparsable = ~absent & np.isnan(numbers)
            self.type_problems += int(unparsable.sum())
            present = numbers[~np.isnan(numbers)]
        self._add_present(present, 0, profile)

    def _add_present(self, present: np.ndarray, rows: int, profile: NumericProfile) -> None:
        """Count present numbers into the reference bins and the range; ``rows``: the
        chunk's rows, whose other rows are missing (0: already counted)."""
        if rows:
            self.missing += rows - present.size
        if profile.bin_edges or profile.bin_counts:
            edges = np.asarray(profile.bin_edges)
            where = np.searchsorted(edges, present, side="left")
            self.bins += np.bincount(where, minlength=edges.size + 1)
        if profile.min is not None and profile.max is not None:
            self.out_of_range += int(((present < profile.min) | (present > profile.max)).sum())

    @property
    def unparsed(self) -> int:
        """Rows in the missing bin of the drift tests: missing or unparsable."""
        return self.missing + self.type_problems


def category_counts(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The category texts (:func:`~modelyard.data.schema.category_keys`) of the present
    values of ``values`` and the count of each, in order of first appearance.

    Columns of one plain type (text, numbers, booleans) are counted by value first
    (Arrow's ``value_counts`` for Arrow-backed text) and only their distinct values
    turned into text; object columns may mix ``1`` and ``True`` (one key to hashing,
    two texts), so they are turned into text row by row first.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        codes = codes[codes >= 0]
        seen = pd.unique(codes)  # in order of first appearance
        counts = np.bincount(codes, minlength=len(dtype.categories))[seen]
        return _merged(category_texts(dtype.categories.to_numpy()[seen]), counts)
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        counted = pc.value_counts(pa.array(values.array))
        present = counted.field("values").is_valid()
        keys = counted.field("values").filter(present).to_numpy(zero_copy_only=False)
        counts = counted.field("counts").filter(present).to_numpy()
        return keys.astype(object), counts.astype(np.int64)  # text is its own category
    if isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "fiub"):
        by_value = values.value_counts(sort=False)  # missing values left out
        return _merged(category_texts(by_value.index.to_numpy()), by_value.to_numpy(np.int64))
    counted = category_keys(values[values.notna().to_numpy()]).value_counts(sort=False)
    return counted.index.to_numpy(dtype=object), counted.to_numpy(np.int64)


def _plain(values: pd.Series) -> pd.Series:
    """A categorical column as objects (missing: NaN), so that the sampled rows of
    chunks with different categories join without a union of their categories."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values
    categories = values.array.categories.to_numpy(dtype=object)
    objects = np.append(categories, np.nan).take(values.array.codes)  # code -1: NaN
    return pd.Series(objects, index=values.index, dtype=object)


def dictionary_codes(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The codes (-1: missing) and categories (an object array) of a dictionary-encoded
    column, its chunks' dictionaries unified first."""
    if values.num_chunks > 1:
        values = values.unify_dictionaries()
    if values.num_chunks == 0:
        return np.zeros(0, np.int64), np.zeros(0, object)
    categories = values.chunk(0).dictionary.to_numpy(zero_copy_only=False).astype(object)
    codes = [
        (pc.fill_null(chunk.indices, -1) if chunk.null_count else chunk.indices).to_numpy()
        for chunk in values.chunks
    ]
    return np.concatenate(codes).astype(np.int64, copy=False), categories


def _plain_arrow(values: pa.ChunkedArray) -> pd.Series:
    """A column of sampled rows as :func:`_plain` gives its pandas form: dictionary
    texts as objects (missing: NaN), any other type as pandas converts it."""
    if not pa.types.is_dictionary(values.type):
        converted: pd.Series = values.to_pandas()
        return converted
    codes, categories = dictionary_codes(values)
    return pd.Series(np.append(categories, np.nan).take(codes), dtype=object)


def _merged(texts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counts of distinct values added up by their text: distinct values can share
    one (0.0 and -0.0 are "0")."""
    codes, uniques = pd.factorize(texts)
    if len(uniques) == len(texts):
        return texts, counts.astype(np.int64)
    summed = np.bincount(codes, weights=counts.astype(np.float64))
    return np.asarray(uniques, dtype=object), summed.astype(np.int64)


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
            name: _Column(feature, feature.kind) for name, feature in profile.features.items()
        }
        self._prediction = _Column(profile.prediction, profile.prediction.kind)
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
                name: _plain(taken[name])
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
        buffers (:meth:`_Column.add_arrow`), and only the rows entering the sample are
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
            name: _plain_arrow(table[name]).set_axis(index)
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

    def column(self, name: str) -> _Column:
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


def _histogram(column: _Column) -> Histogram:
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


def _skipped(name: str, column: _Column, why: str) -> ColumnDrift:
    return ColumnDrift(
        column=name, kind=column.kind, rows=column.rows, tests=[], drift=False, skipped=why
    )


def _quality(name: str, column: _Column, config: MonitorConfig, level: float) -> ColumnQuality:
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
