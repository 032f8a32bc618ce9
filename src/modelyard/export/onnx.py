"""ONNX export of fitted pipelines, its parity check, and an ONNX Runtime runtime.

A version's pipeline (``FrameCoercer`` → derived columns → ``ColumnTransformer`` →
estimator) becomes one ONNX graph with one ``[N, 1]`` input per raw column: numbers
as double (NaN for missing), categories as strings (a missing one is the text
``modelyard.missing_category`` in the model's metadata), dates as int64 nanoseconds.
Column names that are not valid identifiers are renamed by skl2onnx (``Lot.Area`` →
``Lot_Area``); :class:`OnnxInput` keeps the mapping, and so does the model's metadata.

Precision ("auto", chosen per model, recorded as ``OnnxExport.precision``): the feature
steps compute in double, where ``Sub``, ``Div``, ``Where`` and comparisons are
bit-identical to NumPy and only ``Log``/``Exp`` (log and power transforms) may differ in
the last ulp. What the model receives follows what it computes on itself:

- ``float64`` (linear and other models): double throughout.
- ``float64-splits`` (HistGradientBoosting, which predicts on float64 with float64
  thresholds): double features, double thresholds (``ai.onnx.ml`` v3 trees), except that
  log/power columns and their thresholds are rounded to float32 values. Almost half of
  HistGradientBoosting's thresholds are training values, so a row equal to one is an
  exact tie; a 1-ulp ``Log`` difference would flip it, its float32 rounding does not.
  A float32 graph instead misroutes values at the midpoint thresholds (``28.8`` between
  training values ``28.7`` and ``28.9``), which real data with few decimals hits.
- ``float32-model`` (scikit-learn's other trees and forests, which cast to float32
  themselves; XGBoost, likewise; LightGBM, whose converter is float-only): features cast
  to float32 right before the model.

A float32 graph throughout moves tree predictions by several percent (thresholds sit
on training values; the float32 ``Scaler`` is thousands of ulps off).

Parity: the graph serves only if it reproduces the pipeline on real rows. Regression:
every ``|onnx - pipeline| <= atol + rtol * |pipeline|`` (defaults 1e-6 and 1e-4).
Classification: every label equal and every class probability within 1e-4.
:func:`export_pipeline` checks the given rows plus two copies of them: one with
missing values sprinkled in, one with unseen categories (each used only when the
pipeline itself accepts them), so the paths serving takes for such values are checked.

Example:
    >>> from modelyard.export.onnx import export_pipeline     # doctest: +SKIP
    >>> export = export_pipeline(pipeline, eval_rows, task="regression")  # doctest: +SKIP
    >>> export.parity.ok, export.precision                     # doctest: +SKIP
    (True, 'float64-splits')
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from modelyard.errors import DataValidationError
from modelyard.export._common import MISSING_CATEGORY, ExportError
from modelyard.export._convert import convert, library_versions
from modelyard.export._records import OnnxExport, OnnxInput, Parity
from modelyard.export._runtime import OnnxRuntime
from modelyard.features.transformers import FrameCoercer
from modelyard.models.fit import Predictions, predict
from modelyard.models.threshold import threshold_of
from modelyard.types import Columns, RuntimeOutput

__all__ = [
    "MISSING_CATEGORY",
    "PROBA_ATOL",
    "ExportError",
    "OnnxExport",
    "OnnxInput",
    "OnnxRuntime",
    "Parity",
    "check_parity",
    "compare_outputs",
    "columns_from_frame",
    "convert_pipeline",
    "export_pipeline",
]

logger = logging.getLogger(__name__)

#: Largest difference of a class probability that still counts as equal.
PROBA_ATOL = 1e-4
_GAP_SHARE = 0.1
_UNSEEN = "__modelyard_unseen_category__"


def convert_pipeline(
    pipeline: Pipeline, *, task: str, float32_model: bool = False
) -> tuple[bytes, list[OnnxInput], str]:
    """Convert a fitted modelyard pipeline to ONNX.

    Args:
        pipeline: ``Pipeline([("features", ...), ("model", ...)])`` from modelyard.
        task: ``regression``, ``binary`` or ``multiclass``.
        float32_model: cast the features to float32 right before any model (tree
            thresholds and matrix weights in float32), not only where the model computes
            in float32 itself: the reduced-precision graph ``modelyard compress``
            measures, whose parity cost it records.

    Returns:
        The ``.onnx`` bytes, the graph inputs in feature order, and the precision
        (``float64``, ``float64-splits`` or ``float32-model``; see the module docstring).

    Raises:
        ExportError: a step has no converter or its converter fails; the message names
            the step (the version is then served by its scikit-learn pipeline).
        MissingExtraError: skl2onnx or onnx is not installed.
    """
    graph, inputs, precision = convert(pipeline, task=task, float32_model=float32_model)
    return graph.SerializeToString(), inputs, precision


def columns_from_frame(frame: pd.DataFrame, inputs: list[OnnxInput]) -> Columns:
    """Decoded columns (the serving convention) from a frame, typed as in training.

    Numbers become float64 with NaN, categories ``str`` with ``None`` (``20.0`` →
    ``"20"``), dates ``datetime64[ns]``: what :class:`FrameCoercer` makes of them.

    Raises:
        DataValidationError: a column is missing or holds values of the wrong kind.
    """
    coercer = FrameCoercer(
        numeric=[item.column for item in inputs if item.kind == "numeric"],
        categorical=[item.column for item in inputs if item.kind == "categorical"],
        datetime=[item.column for item in inputs if item.kind == "datetime"],
    )
    typed = coercer.fit_transform(frame)
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for item in inputs:
        values = typed[item.column]
        if item.kind == "categorical":
            array = values.to_numpy(dtype=object, copy=True)
            array[pd.isna(array)] = None
            columns[item.column] = array
        elif item.kind == "datetime":
            columns[item.column] = values.to_numpy(dtype="datetime64[ns]")
        else:
            columns[item.column] = values.to_numpy(dtype=np.float64)
    return columns


def check_parity(
    model: bytes,
    inputs: list[OnnxInput],
    pipeline: Pipeline,
    rows: pd.DataFrame,
    *,
    task: str,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> Parity:
    """Compare the ONNX graph's predictions with the pipeline's on ``rows``.

    The graph is fed what serving feeds it (:func:`columns_from_frame`), the pipeline
    the frame itself. No rows means no evidence: ``ok`` is False then.

    Raises:
        DataValidationError: ``rows`` lack an input column or hold wrong values.
        ExportError: ONNX Runtime cannot load the model.
    """
    model_step = pipeline.steps[-1][1]
    classes = np.asarray(model_step.classes_).tolist() if task != "regression" else None
    runtime = OnnxRuntime(
        model, inputs, task=task, classes=classes, threshold=threshold_of(model_step)
    )
    output = runtime.predict(columns_from_frame(rows, inputs), len(rows))
    return compare_outputs(predict(pipeline, rows), output, task=task, rtol=rtol, atol=atol)


def compare_outputs(
    reference: Predictions | RuntimeOutput,
    output: Predictions | RuntimeOutput,
    *,
    task: str,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> Parity:
    """How closely ``output`` (any runtime's: ONNX Runtime, a browser, a phone's format)
    reproduces the pipeline's ``reference`` predictions of the same rows.

    Raises:
        ExportError: a classifier's output has no class probabilities.
    """
    count = len(reference.values)
    if task == "regression":
        expected = np.asarray(reference.values, dtype=np.float64)
        got = np.asarray(output.values, dtype=np.float64)
        max_abs, max_rel = _differences(expected, got)
        close = expected.shape == got.shape and bool(
            np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True).all()
        )
        tolerance = {"rtol": float(rtol), "atol": float(atol)}
        return Parity(count, max_abs, max_rel, None, tolerance, bool(count and close))
    labels_equal = bool(np.array_equal(np.asarray(output.values), np.asarray(reference.values)))
    if reference.proba is None or output.proba is None:
        raise ExportError("the classifier's predictions hold no class probabilities")
    expected = np.asarray(reference.proba, dtype=np.float64)
    got = np.asarray(output.proba, dtype=np.float64)
    max_abs, max_rel = _differences(expected, got)
    ok = bool(count and labels_equal and max_abs <= PROBA_ATOL)
    return Parity(count, max_abs, max_rel, labels_equal, {"proba_atol": PROBA_ATOL}, ok)


def _differences(expected: np.ndarray[Any, Any], got: np.ndarray[Any, Any]) -> tuple[float, float]:
    if expected.size == 0:
        return 0.0, 0.0
    if expected.shape != got.shape:
        return float("inf"), float("inf")
    both_missing = np.isnan(expected) & np.isnan(got)
    difference = np.where(both_missing, 0.0, np.abs(got - expected))
    difference = np.where(np.isnan(difference), np.inf, difference)
    scale = np.abs(expected)
    relative = np.divide(difference, scale, out=np.zeros_like(difference), where=scale > 0)
    return float(difference.max()), float(relative.max())


#: Parity is checked on at most this many of the given rows (evenly spaced), so the check
#: costs seconds on a million-row evaluation set; the harder copies come on top.
PARITY_MAX_ROWS = 5_000


def export_pipeline(
    pipeline: Pipeline, rows: pd.DataFrame, *, task: str, max_rows: int = PARITY_MAX_ROWS
) -> OnnxExport:
    """Convert ``pipeline`` and check its parity on ``rows`` and two harder copies.

    Beyond ``max_rows`` rows, an evenly spaced sample of ``max_rows`` of them is checked.

    The copies are ``rows`` with about one value in ten missing, and ``rows`` with an
    unseen category in every categorical column; each is checked only if the pipeline
    itself predicts it (a spec with ``encode.unknown: error`` rejects unseen categories).

    Args:
        pipeline: the fitted pipeline.
        rows: real rows, e.g. the evaluation rows (``modelyard.registry.readers.evaluation_frame``).
        task: ``regression``, ``binary`` or ``multiclass``.

    Raises:
        ExportError: the pipeline cannot be converted; the message names the step.
        MissingExtraError: the ONNX libraries are not installed.
    """
    model, inputs, precision = convert_pipeline(pipeline, task=task)
    if len(rows) > max_rows:
        rows = rows.iloc[np.linspace(0, len(rows) - 1, max_rows).astype(int)]
    checked = pd.concat([rows, *_harder_rows(pipeline, rows, inputs)], ignore_index=True)
    parity = check_parity(model, inputs, pipeline, checked, task=task)
    if not parity.ok:
        logger.warning("ONNX export does not reproduce the pipeline: %s", parity)
    import onnx

    graph = onnx.load_model_from_string(model)
    opset = {item.domain or "": int(item.version) for item in graph.opset_import}
    classes = None if task == "regression" else np.asarray(pipeline.steps[-1][1].classes_).tolist()
    threshold = threshold_of(pipeline.steps[-1][1])
    return OnnxExport(
        model=model,
        inputs=inputs,
        precision=precision,
        parity=parity,
        opset=opset,
        versions=library_versions(),
        classes=classes,
        decision_threshold=threshold.to_dict() if threshold is not None else None,
    )


def _harder_rows(
    pipeline: Pipeline, rows: pd.DataFrame, inputs: list[OnnxInput]
) -> list[pd.DataFrame]:
    """Copies of ``rows`` with gaps and with unseen categories, if the pipeline takes them."""
    if rows.empty:
        return []
    random = np.random.default_rng(0)
    gaps = rows.copy()
    for item in inputs:
        hole = random.random(len(rows)) < _GAP_SHARE
        gaps[item.column] = gaps[item.column].astype(object).where(~hole, None)
    unseen = rows.copy()
    for item in inputs:
        if item.kind == "categorical":
            unseen[item.column] = _UNSEEN
    accepted = []
    for frame in (gaps, unseen):
        try:
            predict(pipeline, frame)
        except (ValueError, DataValidationError) as exc:
            logger.debug("parity rows skipped: the pipeline refuses them (%s)", exc)
            continue
        accepted.append(frame)
    return accepted
