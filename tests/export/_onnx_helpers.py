"""Helpers of the ONNX export tests (fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelyard.export.onnx import OnnxInput
from modelyard.spec import ProjectSpec
from modelyard.workflows.train import Build

LABELS = ["price", "expensive", "band"]
SMALL_COLUMNS = [
    "area",
    "Lot.Area",
    "Lot.Frontage",
    "Mas.Vnr.Area",
    "Total.Bsmt.SF",
    "Year.Built",
    "Overall.Qual",
    "MS.SubClass",
    "MS.Zoning",
    "Neighborhood",
    "Bldg.Type",
    "Garage.Type",
    "Pool.QC",
    "Sale.Condition",
    "sold_on",
    *LABELS,
]


def spec_for(
    *,
    task: str = "regression",
    target: str = "price",
    model: str = "sklearn.ensemble.HistGradientBoostingRegressor",
    params: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
) -> ProjectSpec:
    """A spec for the Ames frame; the other label columns are dropped."""
    features = dict(features or {})
    features.setdefault("drop", [])
    features["drop"] = [*features["drop"], *(label for label in LABELS if label != target)]
    dates = [t for t in features.get("transforms", []) if t["kind"] == "date_parts"]
    if not dates:  # otherwise a text column of 2,930 distinct values
        features["drop"].append("sold_on")
    return ProjectSpec.model_validate(
        {
            "name": "ames",
            "task": task,
            "target": target,
            "seed": 7,
            "data": {"source": {"path": "unused.csv"}},
            "split": {"method": "random", "test_size": 0.25},
            "features": features,
            "model": {"estimator": model, "params": params or {}},
        }
    )


def feature_rows(result: Build, inputs: list[OnnxInput]) -> pd.DataFrame:
    """The evaluation rows plus the harder copies the export checks parity on."""
    from modelyard.export.onnx import _harder_rows

    rows = result.eval_frame
    return pd.concat([rows, *_harder_rows(result.pipeline, rows, inputs)], ignore_index=True)


def onnx_features(result: Build, rows: pd.DataFrame) -> np.ndarray[Any, Any]:
    """The feature matrix the ONNX graph of ``result``'s feature steps computes."""
    import onnxruntime

    from modelyard.export._convert import convert_features
    from modelyard.export._runtime import build_feeds
    from modelyard.export.onnx import columns_from_frame

    graph, inputs = convert_features(result.pipeline)
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feeds = build_feeds(inputs, columns_from_frame(rows, inputs), len(rows))
    return np.asarray(session.run(None, feeds)[0], dtype=np.float64)
