"""Reference profiles: what a version's inputs and predictions looked like at training time.

A profile holds, for every input feature, the distribution in the training rows, and for
the predictions, their distribution on the evaluation rows:

- numeric (and datetime, as days since the epoch): a grid of :data:`QUANTILE_POINTS`
  quantiles (the reference distribution, used by Kolmogorov-Smirnov and Wasserstein), ten
  bins cut at the deciles with their counts (used by PSI and the chi-squared test), range,
  mean, standard deviation, interquartile range and the missing count;
- categorical: the count of every category (compared as text, ``2`` and ``2.0`` alike,
  as the recorded schema does) and the missing count.

It is computed from frames (pure); :mod:`modelyard.monitoring.io` reads the frozen
snapshot of a version and stores the profile as its ``profile`` artifact (JSON).

Example:
    >>> frame = pd.DataFrame({"size": np.arange(100.0), "town": ["a", "b"] * 50})
    >>> kinds = feature_kinds(frame, categorical=["town"])
    >>> profile = profile_features(frame, kinds)
    >>> profile["town"].counts, profile["size"].missing
    ({'a': 50, 'b': 50}, 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_numeric_dtype,
)
from pydantic import BaseModel, ConfigDict, Field

from modelyard.data.schema import category_keys

__all__ = [
    "PROFILE_FORMAT",
    "QUANTILE_POINTS",
    "CategoricalProfile",
    "FeatureKind",
    "FeatureProfile",
    "NumericProfile",
    "ReferenceProfile",
    "build_profile",
    "feature_kinds",
    "numeric_values",
    "profile_column",
    "profile_features",
]

PROFILE_FORMAT = 1
#: Quantiles kept per numeric column: 501 points resolve the CDF to 0.2%, so the
#: Kolmogorov-Smirnov distance against the grid is within 0.002 of the exact one.
QUANTILE_POINTS = 501
_BINS = 10
#: Above this many distinct values a text column is an identifier or free text: it is
#: profiled (missing rate) but its categories are not compared.
MAX_CATEGORIES = 1000
_SECONDS_PER_DAY = 86_400.0

FeatureKind = Literal["numeric", "datetime", "categorical"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumericProfile(_Frozen):
    """A numeric (or datetime, in days since 1970) column of the reference rows."""

    kind: Literal["numeric", "datetime"] = "numeric"
    rows: int
    missing: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    iqr: float | None
    quantiles: list[float] = Field(description="QUANTILE_POINTS evenly spaced quantiles")
    bin_edges: list[float] = Field(
        description="inner edges: bin i holds edges[i-1] < x <= edges[i]"
    )
    bin_counts: list[int]

    @property
    def present(self) -> int:
        """Rows with a value."""
        return self.rows - self.missing

    @property
    def scale(self) -> float:
        """What distances are divided by: the standard deviation, else the IQR, else 1."""
        for value in (self.std, self.iqr):
            if value is not None and value > 0:
                return value
        return 1.0


class CategoricalProfile(_Frozen):
    """A categorical column of the reference rows: the count of each category."""

    kind: Literal["categorical"] = "categorical"
    rows: int
    missing: int
    counts: dict[str, int] = Field(description="empty when above MAX_CATEGORIES categories")
    too_many: bool = False

    @property
    def present(self) -> int:
        """Rows with a value."""
        return self.rows - self.missing


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class ReferenceProfile(_Frozen):
    """A version's reference: its training inputs, evaluation predictions and metrics."""

    format: int = PROFILE_FORMAT
    model: str
    version: int
    task: str
    train_rows: int
    eval_rows: int
    features: dict[str, FeatureProfile]
    prediction: FeatureProfile
    classes: list[str] | None = None
    positive: str | None = Field(default=None, description="a binary task's positive class")
    metrics: dict[str, float | None] = {}
    calibration: dict[str, list[list[float]]] | None = Field(
        default=None,
        description="isotonic maps per class, [scores, probabilities], fitted on the "
        "evaluation rows (see modelyard.monitoring.estimate)",
    )


def feature_kinds(
    frame: pd.DataFrame, *, categorical: Iterable[str] = ()
) -> dict[str, FeatureKind]:
    """How each column of ``frame`` is compared: numeric, datetime or categorical.

    Columns named in ``categorical`` are categorical; numbers and booleans numeric;
    datetimes (and text that all parses as dates) datetime; other text categorical.
    """
    wanted = set(categorical)
    kinds: dict[str, FeatureKind] = {}
    for name in frame.columns:
        values = frame[name]
        if name in wanted:
            kinds[str(name)] = "categorical"
        elif is_bool_dtype(values.dtype) or is_numeric_dtype(values.dtype):
            kinds[str(name)] = "numeric"
        elif is_datetime64_any_dtype(values.dtype) or _all_dates(values):
            kinds[str(name)] = "datetime"
        else:
            kinds[str(name)] = "categorical"
    return kinds


def _all_dates(values: pd.Series) -> bool:
    present = values.dropna()
    if present.empty or not all(isinstance(v, str) for v in present.head(50)):
        return False
    parsed = pd.to_datetime(present, errors="coerce", utc=True, format="mixed")
    return bool(parsed.notna().all())


def numeric_values(values: pd.Series | np.ndarray, kind: FeatureKind) -> np.ndarray:
    """``values`` as float64 (datetimes: days since 1970); missing or unparsable → NaN."""
    series = pd.Series(values, copy=False)
    if kind == "datetime":
        times = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        seconds = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan) / _SECONDS_PER_DAY
    if is_bool_dtype(series.dtype):
        return series.astype("float64").to_numpy()
    return np.asarray(pd.to_numeric(series, errors="coerce"), dtype=np.float64)


def profile_column(values: pd.Series | np.ndarray, kind: FeatureKind) -> FeatureProfile:
    """The profile of one column of reference rows."""
    if kind == "categorical":
        return _categorical(pd.Series(values, copy=False))
    return _numeric(numeric_values(values, kind), kind)


def profile_features(
    frame: pd.DataFrame, kinds: Mapping[str, FeatureKind]
) -> dict[str, FeatureProfile]:
    """The profile of each column of ``frame`` named in ``kinds``."""
    return {name: profile_column(frame[name], kind) for name, kind in kinds.items()}


def _numeric(array: np.ndarray, kind: FeatureKind) -> NumericProfile:
    missing = np.isnan(array)
    present = array[~missing]
    finite = present[np.isfinite(present)]
    if finite.size == 0:
        return NumericProfile(
            kind="datetime" if kind == "datetime" else "numeric",
            rows=int(array.size),
            missing=int(missing.sum()),
            min=None,
            max=None,
            mean=None,
            std=None,
            iqr=None,
            quantiles=[],
            bin_edges=[],
            bin_counts=[int(present.size)] if present.size else [],
        )
    grid = np.quantile(finite, np.linspace(0.0, 1.0, QUANTILE_POINTS))
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, _BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=edges.size + 1)
    q1, q3 = np.quantile(finite, [0.25, 0.75])
    return NumericProfile(
        kind="datetime" if kind == "datetime" else "numeric",
        rows=int(array.size),
        missing=int(missing.sum()),
        min=float(finite.min()),
        max=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std()),
        iqr=float(q3 - q1),
        quantiles=[float(v) for v in grid],
        bin_edges=[float(v) for v in edges],
        bin_counts=[int(v) for v in counts],
    )


def _categorical(values: pd.Series) -> CategoricalProfile:
    present = values.dropna()
    counts = category_keys(present).value_counts(sort=False)
    too_many = len(counts) > MAX_CATEGORIES
    return CategoricalProfile(
        rows=int(values.size),
        missing=int(values.size - present.size),
        counts={} if too_many else {str(k): int(v) for k, v in sorted(counts.items())},
        too_many=too_many,
    )


def build_profile(
    *,
    model: str,
    version: int,
    task: str,
    train: pd.DataFrame,
    kinds: Mapping[str, FeatureKind],
    predictions: pd.Series | np.ndarray,
    classes: list[str] | None = None,
    metrics: Mapping[str, float | None] | None = None,
    positive: str | None = None,
    calibration: dict[str, list[list[float]]] | None = None,
) -> ReferenceProfile:
    """The reference profile of a version from its training rows and evaluation predictions.

    Args:
        model: the model's name.
        version: the version number.
        task: ``regression``, ``binary`` or ``multiclass``.
        train: the training rows (at least the columns of ``kinds``).
        kinds: how each input feature is compared (see :func:`feature_kinds`).
        predictions: the predictions on the evaluation rows.
        classes: a classifier's classes, as text, in its probability order.
        metrics: the evaluation metrics.
        positive: a binary task's positive class, as text (default: the second class).
        calibration: a classifier's calibration maps (see
            :func:`~modelyard.monitoring.estimate.fit_calibration`).
    """
    prediction_kind: FeatureKind = "numeric" if task == "regression" else "categorical"
    return ReferenceProfile(
        model=model,
        version=version,
        task=task,
        train_rows=len(train),
        eval_rows=len(predictions),
        features=profile_features(train, kinds),
        prediction=profile_column(predictions, prediction_kind),
        classes=classes,
        positive=positive,
        metrics=dict(metrics or {}),
        calibration=calibration,
    )
