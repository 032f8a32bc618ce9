"""The one category-text rule: every site that turns a value into a category agrees."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.contract import category_text, category_texts, first_invalid_text, is_valid_text
from modelyard.data.schema import category_keys, infer_schema
from modelyard.features.transformers import category_values
from modelyard.predlog.tables import label_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("20", "20"),
        (20, "20"),
        (20.0, "20"),
        (1.0, "1"),
        (1, "1"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (1e16, "10000000000000000"),
        (1e20, "1e+20"),
        (2**63, "9223372036854775808"),
        (2.0**63, "9.223372036854776e+18"),
        (2**64, "18446744073709551616"),
        (-(2**63), "-9223372036854775808"),
        (-(2.0**63), "-9.223372036854776e+18"),
        (2.0**63 - 1024, "9223372036854774784"),  # the largest float below the cut-off
        (math.inf, "inf"),
        (True, "True"),
        (False, "False"),
        (np.int64(7), "7"),
        (np.float32(2.5), "2.5"),
        (np.bool_(True), "True"),
        (None, None),
        (math.nan, None),
        (pd.NA, None),
    ],
)
def test_the_rule(value: Any, text: str | None) -> None:
    assert category_text(value) == text
    assert category_texts([value]).tolist() == [text]


def test_1e20_is_recorded_and_encoded_as_served() -> None:
    """The value training saw is the value serving accepts and the pipeline encodes."""
    frame = pd.DataFrame({"code": [1e20, 20.0, 1e16, -0.0]})
    recorded = infer_schema(frame, categorical=["code"]).get("code")
    assert recorded is not None
    assert recorded.categories == ["0", "10000000000000000", "1e+20", "20"]
    assert category_values(frame["code"]).tolist() == ["1e+20", "20", "10000000000000000", "0"]
    assert category_keys(frame["code"]).tolist() == ["1e+20", "20", "10000000000000000", "0"]


def test_factorizing_never_merges_values_with_different_texts() -> None:
    # True == 1 and 2**70 == 2.0**70 hash alike; their texts differ.
    values = [1, True, 2**70, 2.0**70, 0, False]
    expected = ["1", "True", str(2**70), repr(2.0**70), "0", "False"]
    assert category_texts(values).tolist() == expected
    assert category_texts(pd.Series(values, dtype=object)).tolist() == expected


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from([1e20, 1e16, -0.0, 2.0**63, -(2.0**63), 2**63, 2**64, -(2**63)])
    | st.text(max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_SCALARS, max_size=40))
def test_every_site_gives_the_texts_of_the_rule(values: list[Any]) -> None:
    expected = [category_text(value) for value in values]
    assert category_texts(values).tolist() == expected
    assert category_texts(pd.Series(values, dtype=object)).tolist() == expected
    pipeline = category_values(values).tolist()
    assert [None if text is np.nan else text for text in pipeline] == expected
    for value, text in zip(values, expected, strict=True):
        if not isinstance(value, str):
            assert label_text(value) == text
    floats = [value for value in values if type(value) is float]
    as_array = category_texts(np.array(floats, dtype=np.float64)).tolist()
    assert as_array == [category_text(value) for value in floats]


def test_text_must_be_unicode_scalar_values() -> None:
    assert is_valid_text("zone é ✓") and not is_valid_text("a\ud800")
    assert first_invalid_text(["ok", None, 3, "b\udfff", "x\ud800"]) == 3
    assert first_invalid_text(["ok", "ü"]) is None
