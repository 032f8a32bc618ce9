"""The spec's transforms (log, power, bin, ratio, cross, date_parts) convert with parity.

Checked as in test_onnx_features.py: the exported model's parity, and the ONNX graph's
feature matrix against scikit-learn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from _onnx_helpers import feature_rows, onnx_features

from modelyard.export.onnx import export_pipeline

# Pool.QC is empty in some samples: scikit-learn skips it, and says so every time.
pytestmark = pytest.mark.filterwarnings("ignore:Skipping features without any observed")

FAST_MODEL = {"params": {"max_iter": 15}}
ONEHOT = {"method": "onehot", "unknown": "ignore"}
ALL_PARTS = ["year", "month", "day", "dayofweek", "dayofyear", "quarter", "hour"]

TRANSFORMS: dict[str, dict[str, Any]] = {
    "log, scaled": {
        "transforms": [{"kind": "log", "columns": ["Lot.Area", "Mas.Vnr.Area"]}],
        "scale": "standard",
    },
    "log with offset 0": {"transforms": [{"kind": "log", "columns": ["area"], "offset": 0}]},
    "power yeo-johnson": {
        "transforms": [{"kind": "power", "columns": ["Lot.Area", "Mas.Vnr.Area", "area"]}]
    },
    "power box-cox": {
        "transforms": [{"kind": "power", "method": "box-cox", "columns": ["Lot.Area", "area"]}]
    },
    "bin quantile ordinal": {"transforms": [{"kind": "bin", "columns": ["area", "Lot.Area"]}]},
    "bin uniform onehot": {
        "transforms": [
            {"kind": "bin", "columns": ["area"], "strategy": "uniform", "encode": "onehot"}
        ]
    },
    "bin kmeans": {"transforms": [{"kind": "bin", "columns": ["Lot.Area"], "strategy": "kmeans"}]},
    "ratio": {
        "transforms": [
            {"kind": "ratio", "numerator": "Total.Bsmt.SF", "denominator": "area", "name": "r"}
        ]
    },
    "cross of categories and a number": {
        "transforms": [
            {"kind": "cross", "columns": ["MS.Zoning", "MS.SubClass"], "name": "zone_class"},
            {"kind": "cross", "columns": ["Neighborhood", "Bldg.Type"], "name": "area_type"},
        ],
        "encode": {**ONEHOT, "min_frequency": 5},
    },
    "date_parts": {
        "transforms": [
            {
                "kind": "date_parts",
                "columns": ["sold_on"],
                "parts": ALL_PARTS,
            }
        ],
    },
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_transform_converts_with_parity(transform: str, fit: Any, small_ames: pd.DataFrame) -> None:
    result = fit(small_ames, features=TRANSFORMS[transform], **FAST_MODEL)
    exported = export_pipeline(result.pipeline, result.eval_frame, task="regression")
    assert exported.parity.ok, exported.parity
    assert exported.parity.rows >= 2 * len(result.eval_frame)

    rows = feature_rows(result, exported.inputs)
    expected = np.asarray(result.pipeline[:-1].transform(rows), dtype=np.float64)
    got = onnx_features(result, rows)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_date_parts_match_pandas_across_centuries_leap_days_and_missing_dates(
    fit: Any, small_ames: pd.DataFrame
) -> None:
    result = fit(small_ames, features=TRANSFORMS["date_parts"], **FAST_MODEL)
    dates = [
        "1900-02-28T23:00:00",
        "1900-03-01T00:00:00",
        "1969-12-31T23:59:59",
        "1970-01-01T00:00:00",
        "2000-02-29T12:00:00",
        "2000-12-31T05:00:00",
        "2024-12-31T23:00:00",
        "2100-03-01T01:00:00",
        None,
    ]
    rows = result.eval_frame.iloc[: len(dates)].reset_index(drop=True)
    rows["sold_on"] = dates
    expected = np.asarray(result.pipeline[:-1].transform(rows), dtype=np.float64)
    np.testing.assert_array_equal(onnx_features(result, rows), expected)
