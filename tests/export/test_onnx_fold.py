"""Filling missing categories is folded into the encoders that read the filled text.

Each folded graph is checked three ways: its shape (no fill, join or take-out on text
is left, each text input goes straight to one encoder), its feature matrix against
scikit-learn's on rows with missing, rare and unseen categories, and the export's own
parity check. A graph the fold must not touch is checked to be left as built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from _onnx_helpers import feature_rows, onnx_features

from modelyard.export._common import MISSING_CATEGORY, TEXT_IMPUTATION_TAG
from modelyard.export._convert import convert_features
from modelyard.export._fold import fold_text_imputation
from modelyard.export.onnx import export_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:Skipping features without any observed")

FAST_MODEL = {"params": {"max_iter": 15}}
ONEHOT = {"method": "onehot", "unknown": "ignore", "min_frequency": 5}
ORDINAL = {"method": "ordinal", "min_frequency": 5}
MANY = ["Bldg.Type", "Sale.Condition", "MS.Zoning", "Garage.Type", "Neighborhood"]


def _text_inputs(graph: Any, inputs: list[Any]) -> set[str]:
    return {item.onnx_name for item in inputs if item.kind == "categorical"}


def _readers(graph: Any, name: str) -> list[Any]:
    return [node for node in graph.graph.node if name in node.input]


@pytest.mark.parametrize("encode", [ONEHOT, ORDINAL], ids=["onehot", "ordinal"])
@pytest.mark.parametrize("fill", ["constant", "most_frequent"])
@pytest.mark.parametrize("columns", [MANY, ["Garage.Type"]], ids=["five", "one"])
def test_the_fill_is_folded_and_the_features_are_unchanged(
    encode: dict[str, Any], fill: str, columns: list[str], fit: Any, small_ames: pd.DataFrame
) -> None:
    features = {
        "numeric": ["area", "Lot.Area"],
        "categorical": columns,
        "encode": encode,
        "impute": {"categorical": fill},
    }
    result = fit(small_ames, features=features, **FAST_MODEL)
    graph, inputs = convert_features(result.pipeline)
    nodes = list(graph.graph.node)
    assert not [node for node in nodes if node.name.startswith(TEXT_IMPUTATION_TAG)]
    # One lookup per column, none flagging missing values.
    assert [node.op_type for node in nodes].count("LabelEncoder") == len(columns)
    for name in _text_inputs(graph, inputs):
        (reader,) = _readers(graph, name)
        assert reader.op_type == "LabelEncoder", reader

    rows = feature_rows(result, inputs)
    assert rows[columns].isna().any().all()  # every column has missing values to fill
    expected = np.asarray(result.pipeline[:-1].transform(rows), dtype=np.float64)
    np.testing.assert_array_equal(onnx_features(result, rows), expected)
    exported = export_pipeline(result.pipeline, result.eval_frame, task="regression")
    assert exported.parity.ok, exported.parity


def _filled_town(fill: bytes, after: list[Any], output: Any) -> Any:
    """A graph filling the text input ``town`` with ``fill`` as ``_encoders`` does (the
    filled text is ``filled``), then running the nodes ``after``; it returns ``output``."""
    from onnx import TensorProto, checker, helper

    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["town"],
            ["flag"],
            domain="ai.onnx.ml",
            keys_strings=[MISSING_CATEGORY],
            values_int64s=[1],
            default_int64=0,
        ),
        helper.make_node("Cast", ["flag"], ["missing"], to=TensorProto.BOOL),
        helper.make_node(
            "Where", ["missing", "fill", "town"], ["filled"], name=f"{TEXT_IMPUTATION_TAG}_1"
        ),
        *after,
    ]
    text = helper.make_tensor_value_info("town", TensorProto.STRING, [None, 1])
    initializer = helper.make_tensor("fill", TensorProto.STRING, [1, 1], [fill])
    model = helper.make_model(
        helper.make_graph(nodes, "g", [text], [output], initializer=[initializer]),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    checker.check_model(model)
    return model


def test_a_fill_read_by_something_other_than_an_encoder_is_left_as_built() -> None:
    """A fill whose output the graph returns is not folded: the graph is unchanged."""
    from onnx import TensorProto, helper

    filled = helper.make_tensor_value_info("filled", TensorProto.STRING, [None, 1])
    model = _filled_town(b"alpha", [], filled)
    before = model.SerializeToString()
    assert fold_text_imputation(model) == 0
    assert model.SerializeToString() == before


def test_an_encoder_mapping_the_fill_to_its_default_maps_a_missing_value_to_it() -> None:
    """A fill text the encoder has no key for (so its default) is what a missing value
    becomes: the folded encoder gets a key for the missing text with that default."""
    import onnxruntime
    from onnx import TensorProto, checker, helper

    lookup = helper.make_node(
        "LabelEncoder",
        ["filled"],
        ["code"],
        domain="ai.onnx.ml",
        keys_strings=["alpha", "beta"],
        values_floats=[0.0, 1.0],
        default_float=7.0,
    )
    code = helper.make_tensor_value_info("code", TensorProto.FLOAT, [None, 1])
    model = _filled_town(b"nowhere", [lookup], code)
    feed = {"town": np.array([["alpha"], [MISSING_CATEGORY], ["beta"], ["gamma"]], dtype=object)}

    def run() -> list[float]:
        checker.check_model(model)
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return [float(value) for value in session.run(None, feed)[0].ravel()]

    before = run()
    assert fold_text_imputation(model) == 1
    assert [node.op_type for node in model.graph.node] == ["LabelEncoder"]
    assert not model.graph.initializer
    assert run() == before == [0.0, 7.0, 1.0, 7.0]
