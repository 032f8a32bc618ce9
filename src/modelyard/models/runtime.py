"""The reference runtime: the fitted scikit-learn pipeline behind :class:`Runtime`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from modelyard.types import Columns, RuntimeOutput

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["SklearnRuntime"]


class SklearnRuntime:
    """The reference runtime: the fitted scikit-learn pipeline, fed a DataFrame."""

    name = "sklearn"
    inline = False  # a ColumnTransformer call costs milliseconds

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
