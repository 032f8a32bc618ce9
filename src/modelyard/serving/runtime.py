"""Runtimes: what turns decoded request columns into predictions.

A request is decoded straight into :data:`Columns` (one NumPy array per input column,
in the version's recorded feature order), never through pandas on the fast path:

- numeric columns: ``float64`` arrays, missing values as NaN;
- categorical columns: ``object`` arrays of ``str``, missing values as ``None``;
- datetime columns: ``datetime64[ns]`` arrays, missing as NaT.

Two runtimes take them: :class:`OnnxRuntime` (ONNX Runtime, used when the version's
recorded parity holds) and :class:`SklearnRuntime` (the reference pipeline itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["Columns", "Runtime", "RuntimeOutput", "SklearnRuntime"]

Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class RuntimeOutput:
    """Predictions for a batch: values (or labels), class probabilities and class order."""

    values: np.ndarray
    proba: np.ndarray | None = None
    classes: list[Any] | None = None


class Runtime(Protocol):
    """Predicts for decoded columns; safe to call from several threads."""

    name: str

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        """Predict ``rows`` rows given as one array per input column."""


class SklearnRuntime:
    """The reference runtime: the fitted scikit-learn pipeline, fed a DataFrame."""

    name = "sklearn"

    def __init__(self, pipeline: Pipeline, feature_order: list[str]) -> None:
        self.pipeline = pipeline
        self.feature_order = feature_order

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        import pandas as pd

        from modelyard.models.fit import predict

        frame = pd.DataFrame({name: columns[name] for name in self.feature_order})
        result = predict(self.pipeline, frame)
        classes = list(result.classes) if result.classes is not None else None
        return RuntimeOutput(values=np.asarray(result.values), proba=result.proba, classes=classes)
