"""Compression of a fitted pipeline for the edge: pruning tree ensembles, quantizing
ONNX graphs, and measuring what each costs in size and per-row latency.

The functions here transform and measure; choosing what to keep against the spec's
metrics and registering the result is :mod:`modelyard.workflows.compress`.

Pruning (the features step is kept as it is; only the estimator shrinks):

- **first k**: boosted ensembles (HistGradientBoosting, GradientBoosting) keep their
  first ``k`` iterations, forests (RandomForest, ExtraTrees) their first ``k`` trees.
  Boosting is sequential and forests draw each tree's seed in order, so the pruned
  model is exactly the model trained with ``max_iter``/``n_estimators = k``.
- **best k** (HistGradientBoostingRegressor): the post-processing of ensembles of
  Friedman and Popescu ("Importance Sampled Learning Ensembles", 2003): a non-negative
  lasso of the training target on each tree's output picks a few trees and a weight for
  each; the kept trees' leaf values are scaled by their weights. The lasso path gives
  one candidate per penalty, from a handful of trees to most of them.

Quantization applies where the graph has float32 matrix products (``MatMul``, ``Gemm``:
neural networks, linear models written as such): ONNX Runtime's dynamic int8
quantization of the weights. modelyard's graphs compute in double for parity, so the
workflow quantizes the version's float32 graph (``convert_pipeline(...,
float32_model=True)``), which it also measures as such: for trees that is float32
thresholds. Tree ensembles have no matrix products (their thresholds are compared, not
multiplied), so for them quantization does not apply and says so.
"""

from __future__ import annotations

import copy
import gzip
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.export._common import ExportError, require

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelyard.export._records import OnnxInput

__all__ = [
    "Size",
    "best_k_path",
    "ensemble_size",
    "first_k",
    "graph_size",
    "quantize_graph",
    "reweighted",
    "row_latency_ms",
    "unquantizable",
]

_BOOSTED = ("HistGradientBoostingRegressor", "HistGradientBoostingClassifier")
_GRADIENT = ("GradientBoostingRegressor", "GradientBoostingClassifier")
_FORESTS = (
    "RandomForestRegressor",
    "RandomForestClassifier",
    "ExtraTreesRegressor",
    "ExtraTreesClassifier",
)
#: Operators dynamic quantization rewrites (weights to int8).
_QUANTIZABLE = ("MatMul", "Gemm")
_FLOAT = 1  # onnx.TensorProto.FLOAT
#: Candidates on the lasso path (penalties, log-spaced down to 1e-4 of the largest).
_LASSO_ALPHAS = 60


@dataclass(frozen=True)
class Size:
    """Bytes of a serialized model: raw and gzip-compressed (level 9, as served)."""

    raw: int
    gzip: int


def graph_size(model: bytes) -> Size:
    """The size of ``model`` raw and gzip-compressed."""
    return Size(len(model), len(gzip.compress(model, 9)))


def _model_step(pipeline: Pipeline) -> Any:
    return pipeline.steps[-1][1]


def ensemble_size(pipeline: Pipeline) -> int | None:
    """Iterations (boosting) or trees (forests) of the pipeline's model; None when it is
    not an ensemble modelyard can prune."""
    model = _model_step(pipeline)
    name = type(model).__name__
    if name in _BOOSTED:
        return len(model._predictors)
    if name in _GRADIENT:
        return int(model.estimators_.shape[0])
    if name in _FORESTS:
        return len(model.estimators_)
    return None


def first_k(pipeline: Pipeline, k: int) -> Pipeline:
    """A copy of ``pipeline`` whose ensemble keeps its first ``k`` iterations or trees.

    Raises:
        ExportError: the model is not a prunable ensemble, or ``k`` is out of range.
    """
    size = _require_ensemble(pipeline)
    if not 1 <= k <= size:
        raise ExportError(f"cannot keep {k} of {size} trees; choose k from 1 to {size}")
    pruned = copy.deepcopy(pipeline)
    model = _model_step(pruned)
    name = type(model).__name__
    if name in _BOOSTED:
        model._predictors = model._predictors[:k]
        model.max_iter = k
    elif name in _GRADIENT:
        model.estimators_ = model.estimators_[:k]
        model.train_score_ = model.train_score_[:k]
        model.n_estimators_ = k
        model.n_estimators = k
    else:
        model.estimators_ = model.estimators_[:k]
        model.n_estimators = k
    return pruned


def best_k_path(
    pipeline: Pipeline, rows: pd.DataFrame, target: np.ndarray[Any, Any]
) -> list[np.ndarray[Any, Any]]:
    """Tree weights along the non-negative lasso path, sparsest first.

    Each item holds one weight per iteration of the ensemble (0: the tree is dropped);
    :func:`reweighted` applies one. Fitted on ``rows`` (the training rows) against
    ``target``.

    Raises:
        ExportError: the model is not a HistGradientBoostingRegressor.
    """
    from sklearn.linear_model import lasso_path

    model = _model_step(pipeline)
    if type(model).__name__ != "HistGradientBoostingRegressor":
        raise ExportError(
            f"best-k pruning reweights the trees of a HistGradientBoostingRegressor; "
            f"{type(model).__name__} can keep its first k trees instead"
        )
    outputs = _tree_outputs(pipeline, rows)
    residual = np.asarray(target, dtype=np.float64) - _baseline(model)
    _, coefs, _ = lasso_path(
        outputs, residual, positive=True, alphas=_LASSO_ALPHAS, eps=1e-4, max_iter=5_000
    )
    path = [np.asarray(column, dtype=np.float64) for column in coefs.T if np.any(column > 0)]
    return sorted(path, key=lambda weights: int(np.count_nonzero(weights)))


def reweighted(pipeline: Pipeline, weights: np.ndarray[Any, Any]) -> Pipeline:
    """A copy of ``pipeline`` keeping the trees of nonzero weight, leaf values scaled."""
    pruned = copy.deepcopy(pipeline)
    model = _model_step(pruned)
    kept = []
    for trees, weight in zip(model._predictors, weights, strict=True):
        if weight <= 0:
            continue
        for tree in trees:
            tree.nodes["value"] *= weight
        kept.append(trees)
    model._predictors = kept
    model.max_iter = len(kept)
    return pruned


def _tree_outputs(pipeline: Pipeline, rows: pd.DataFrame) -> np.ndarray[Any, Any]:
    """``[rows, iterations]``: what each iteration adds to the prediction of each row."""
    model = _model_step(pipeline)
    features = pipeline[:-1].transform(rows)
    staged = np.vstack(
        [np.asarray(step, dtype=np.float64) for step in model.staged_predict(features)]
    )
    start = np.full((1, staged.shape[1]), _baseline(model))
    return np.diff(np.vstack([start, staged]), axis=0).T


def _baseline(model: Any) -> float:
    return float(np.ravel(model._baseline_prediction)[0])


def _require_ensemble(pipeline: Pipeline) -> int:
    size = ensemble_size(pipeline)
    if size is None:
        name = type(_model_step(pipeline)).__name__
        raise ExportError(
            f"{name} is not an ensemble modelyard can prune; pruning applies to "
            "HistGradientBoosting, GradientBoosting, RandomForest and ExtraTrees models "
            "(distill it into a smaller model instead: modelyard distill)"
        )
    return size


def unquantizable(model: bytes) -> str | None:
    """Why dynamic quantization does not apply to ``model``; None when it does.

    It applies to ``MatMul``/``Gemm`` nodes whose weights are float32 initializers:
    ONNX Runtime quantizes float32 only, and graphs exported in float64 (for parity
    with scikit-learn) keep their double weights.
    """
    onnx = require("onnx")
    graph = onnx.load_model_from_string(model).graph
    products = [node for node in graph.node if node.op_type in _QUANTIZABLE]
    if not products:
        return (
            "not applicable: the graph has no MatMul or Gemm (tree ensembles compare "
            "thresholds; a float32 linear model is one ONNX-ML Linear* node): no weights "
            "to quantize"
        )
    weights = {item.name: item.data_type for item in graph.initializer}
    if not any(weights.get(name) == _FLOAT for node in products for name in node.input):
        return (
            "not applicable: the graph's MatMul/Gemm weights are float64 (exported in "
            "double for parity), and ONNX Runtime quantizes float32 weights only"
        )
    return None


def quantize_graph(model: bytes) -> bytes:
    """The graph with its float32 ``MatMul``/``Gemm`` weights quantized to int8 (ONNX
    Runtime's dynamic quantization).

    Raises:
        ExportError: quantization does not apply (:func:`unquantizable` says why).
    """
    reason = unquantizable(model)
    if reason is not None:
        raise ExportError(reason)
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="modelyard-quantize-") as scratch:
        source, target = Path(scratch) / "model.onnx", Path(scratch) / "quantized.onnx"
        source.write_bytes(model)
        quantize_dynamic(
            source, target, op_types_to_quantize=list(_QUANTIZABLE), weight_type=QuantType.QInt8
        )
        return target.read_bytes()


def row_latency_ms(
    model: bytes,
    inputs: list[OnnxInput],
    rows: pd.DataFrame,
    *,
    task: str,
    classes: list[Any] | None,
    calls: int = 200,
) -> float:
    """Median milliseconds of one-row predictions of ``model`` in ONNX Runtime (Python),
    over ``calls`` calls on the first rows of ``rows`` in turn."""
    from modelyard.export._runtime import OnnxRuntime
    from modelyard.export.onnx import columns_from_frame

    runtime = OnnxRuntime(model, inputs, task=task, classes=classes)
    singles = [columns_from_frame(rows.iloc[[i % len(rows)]], inputs) for i in range(10)]
    runtime.predict(singles[0], 1)
    spent = []
    for call in range(calls):
        started = time.perf_counter()
        runtime.predict(singles[call % len(singles)], 1)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) * 1000
