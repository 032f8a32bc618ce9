"""Imputing, scaling and encoding options of the spec convert, value for value, with parity.

For each option the pipeline is fitted on Ames rows (dotted column names, missing
values, rare categories), exported, and checked twice: the exported model's parity on
the evaluation rows and their harder copies, and the feature matrix the ONNX graph
computes against the one scikit-learn computes (the model sees these features).
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

OPTIONS: dict[str, dict[str, Any]] = {
    "impute median": {"impute": {"numeric": "median"}},
    "impute mean": {"impute": {"numeric": "mean"}},
    "impute most_frequent": {"impute": {"numeric": "most_frequent"}},
    "impute zero": {"impute": {"numeric": "zero"}},
    "impute none": {"impute": {"numeric": "none"}},
    "impute with indicator": {"impute": {"numeric": "median", "add_indicator": True}},
    "categorical impute most_frequent": {"impute": {"categorical": "most_frequent"}},
    "categorical impute none": {"impute": {"categorical": "none"}},
    "scale standard": {"scale": "standard"},
    "scale robust": {"scale": "robust"},
    "scale minmax": {"scale": "minmax"},
    "onehot": {"encode": ONEHOT},
    "onehot min_frequency count": {"encode": {**ONEHOT, "min_frequency": 10}},
    "onehot min_frequency share, max_categories": {
        "encode": {**ONEHOT, "min_frequency": 0.02, "max_categories": 4}
    },
    "onehot, no categorical imputer": {"encode": ONEHOT, "impute": {"categorical": "none"}},
    "ordinal": {"encode": {"method": "ordinal"}},
    "ordinal min_frequency, max_categories": {
        "encode": {"method": "ordinal", "min_frequency": 20, "max_categories": 5}
    },
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_feature_option_converts_with_parity(
    option: str, fit: Any, small_ames: pd.DataFrame
) -> None:
    result = fit(small_ames, features=OPTIONS[option], **FAST_MODEL)
    exported = export_pipeline(result.pipeline, result.eval_frame, task="regression")
    assert exported.parity.ok, exported.parity
    assert exported.parity.rows >= 2 * len(result.eval_frame)  # harder copies checked too

    rows = feature_rows(result, exported.inputs)
    expected = np.asarray(result.pipeline[:-1].transform(rows), dtype=np.float64)
    got = onnx_features(result, rows)
    assert got.shape == expected.shape
    # Bit-identical but for Log/Exp, within a few ulps (then magnified by scaling a
    # value close to the mean).
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["onehot", "ordinal"])
def test_unknown_error_encoders_convert_and_skip_rows_the_pipeline_refuses(
    method: str, fit: Any, small_ames: pd.DataFrame
) -> None:
    features = {
        "numeric": ["area", "Lot.Area"],
        "categorical": ["Bldg.Type", "Sale.Condition"],
        "encode": {"method": method, "unknown": "error"},
    }
    result = fit(small_ames, features=features, **FAST_MODEL)
    exported = export_pipeline(result.pipeline, result.eval_frame, task="regression")
    assert exported.parity.ok, exported.parity
    # The copy with unseen categories is refused by the pipeline, so it is not compared.
    assert exported.parity.rows < 3 * len(result.eval_frame)
    rows = feature_rows(result, exported.inputs)
    expected = np.asarray(result.pipeline[:-1].transform(rows), dtype=np.float64)
    np.testing.assert_array_equal(onnx_features(result, rows), expected)
