"""Live-vs-training skew: does serving still compute what training computed?

A sample of a window's logged rows is replayed through the version's reference
scikit-learn pipeline, and its outputs are compared with the ones the serving runtime
logged (ONNX Runtime or the pipeline itself). Any row beyond the tolerance recorded with
the version's ONNX parity check is skew: a converter, a runtime upgrade, a decoding
change or a tampered model computing something training did not.

The logged inputs are the decoded columns the runtime saw (numbers as float64, texts,
datetimes), so they go back to the pipeline as the engine hands them to a runtime
(:data:`~modelyard.types.Columns`): no request parsing is replayed, only the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from modelyard.monitoring.results import Skew
from modelyard.predlog.tables import PROBA_PREFIX, TRUNCATED, label_text
from modelyard.types import Runtime, RuntimeOutput

__all__ = ["DEFAULT_TOLERANCE", "Replay", "replay_tolerance", "skew_check"]

#: The parity check's own defaults (:func:`modelyard.export.onnx.compare_outputs`),
#: used for a version served without an ONNX export.
DEFAULT_TOLERANCE: dict[str, dict[str, float]] = {
    "regression": {"rtol": 1e-4, "atol": 1e-6},
    "classification": {"proba_atol": 1e-4},
}
_EXAMPLES = 3


@dataclass(frozen=True)
class Replay:
    """The reference runtime of a version, its features and the tolerance to hold.

    Attributes:
        runtime: the scikit-learn pipeline as a runtime.
        features: the version's input columns, in feature order.
        task: ``regression``, ``binary`` or ``multiclass``.
        tolerance: ``rtol``/``atol`` (regression) or ``proba_atol`` (classifiers).
    """

    runtime: Runtime
    features: list[str]
    task: str
    tolerance: Mapping[str, float]


def replay_tolerance(task: str, parity: Mapping[str, Any] | None) -> dict[str, float]:
    """The tolerance recorded with a version's ONNX parity, else the parity defaults."""
    recorded = dict((parity or {}).get("tolerance") or {})
    kind = "regression" if task == "regression" else "classification"
    tolerance = dict(DEFAULT_TOLERANCE[kind])
    tolerance.update({k: float(v) for k, v in recorded.items() if k in tolerance})
    return tolerance


def skew_check(replay: Replay, sample: pd.DataFrame, classes: list[str] | None) -> Skew:
    """Replay ``sample`` (logged inputs, ``prediction`` and ``proba.<class>`` columns)
    through the reference runtime and compare with the logged outputs."""
    cut = np.zeros(len(sample), dtype=bool)
    for name in replay.features:
        values = sample[name] if name in sample.columns else None
        if values is not None and not _numbers_or_times(values):
            cut |= values.astype("string").str.endswith(TRUNCATED, na=False).to_numpy(bool)
    rows = sample.loc[~cut].reset_index(drop=True)
    tolerance = dict(replay.tolerance)
    if rows.empty:
        skipped = int(cut.sum())
        return Skew(
            rows=0, mismatched=0, skipped=skipped, max_abs=0.0, tolerance=tolerance, skew=False
        )
    output = replay.runtime.predict(_columns(rows, replay.features), len(rows))
    if replay.task == "regression":
        bad, difference, labels_equal = _regression(rows, output, tolerance)
    else:
        bad, difference, labels_equal = _classification(rows, output, classes or [], tolerance)
    examples = [
        {
            "row": int(at),
            "logged": _plain(rows["prediction"].iloc[at]),
            "pipeline": _plain(np.asarray(output.values)[at]),
            "difference": float(difference[at]),
        }
        for at in np.flatnonzero(bad)[:_EXAMPLES]
    ]
    return Skew(
        rows=len(rows),
        mismatched=int(bad.sum()),
        skipped=int(cut.sum()),
        max_abs=float(np.nanmax(difference)) if difference.size else 0.0,
        labels_equal=labels_equal,
        tolerance=tolerance,
        examples=examples,
        skew=bool(bad.any()),
    )


def _numbers_or_times(values: pd.Series) -> bool:
    dtype = values.dtype
    return is_datetime64_any_dtype(dtype) or (is_numeric_dtype(dtype) and not is_bool_dtype(dtype))


def _columns(rows: pd.DataFrame, features: list[str]) -> dict[str, np.ndarray]:
    """Logged columns as a runtime takes them: float64 with NaN, datetime64[ns] with NaT,
    or text objects with None (see :mod:`modelyard.types`)."""
    columns = {}
    for name in features:
        values = rows[name] if name in rows.columns else pd.Series(None, index=rows.index)
        if is_datetime64_any_dtype(values.dtype):
            stamps = pd.to_datetime(values)
            if stamps.dt.tz is not None:
                stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
            columns[name] = stamps.to_numpy("datetime64[ns]")
        elif _numbers_or_times(values):
            columns[name] = values.to_numpy(np.float64, na_value=np.nan)
        else:
            texts = values.astype(object)
            columns[name] = texts.where(values.notna(), None).to_numpy(object)
    return columns


def _regression(
    rows: pd.DataFrame, output: RuntimeOutput, tolerance: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray, None]:
    logged = pd.to_numeric(rows["prediction"], errors="coerce").to_numpy(np.float64)
    replayed = np.asarray(output.values, dtype=np.float64)
    close = np.isclose(
        logged, replayed, rtol=tolerance["rtol"], atol=tolerance["atol"], equal_nan=True
    )
    difference = np.where(np.isnan(logged) & np.isnan(replayed), 0.0, np.abs(logged - replayed))
    return ~close, np.nan_to_num(difference, nan=np.inf), None


def _classification(
    rows: pd.DataFrame, output: RuntimeOutput, classes: list[str], tolerance: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray, bool]:
    replayed_labels = np.asarray([label_text(v) for v in np.asarray(output.values)], dtype=object)
    logged_labels = rows["prediction"].astype(object).map(label_text).to_numpy(object)
    unequal = replayed_labels != logged_labels
    difference = np.zeros(len(rows))
    names = [PROBA_PREFIX + c for c in classes]
    if output.proba is not None and classes and all(n in rows.columns for n in names):
        served = [str(label_text(c)) for c in (output.classes or classes)]
        order = [served.index(c) for c in classes]
        replayed = np.asarray(output.proba, dtype=np.float64)[:, order]
        logged = rows[names].to_numpy(np.float64)
        difference = np.nan_to_num(np.abs(replayed - logged), nan=np.inf).max(axis=1)
    bad = unequal | (difference > tolerance["proba_atol"])
    return bad, difference, not bool(unequal.any())


def _plain(value: Any) -> str | float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, int | float | np.number):
        return float(value)
    return str(value)
