"""The contract's two fronts cannot disagree: the same values, as a JSON request and as a
pandas frame, give the same accepted rows, the same problems and the same texts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _contract_cases import input_columns
from modelyard.contract import (
    InputColumn,
    InputContract,
    RequestValidationError,
    check_frame_columns,
    decode_columnar,
    decode_frame,
    decode_records,
)
from modelyard.data.schema import infer_schema, validate_frame
from modelyard.features.transformers import category_values

_TEXTS = st.sampled_from(["A", "B", "20", "1e+20", "True", "2024-05-31", "x\ud800", "é" * 9])
_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**66), max_value=2**66)
    | st.floats()
    | st.sampled_from([1e20, 1e16, -0.0, 1.0, 1, 2**63, 2**64, -(2**63), 2.0**63, 25.0])
    | _TEXTS
    | st.text(max_size=3)
)


def _columns() -> st.SearchStrategy[InputColumn]:
    return input_columns("c", _TEXTS | st.just("False"))


def _outcome(call: Any) -> Any:
    try:
        columns, rows = call()
    except RequestValidationError as error:
        return sorted((p.row, p.column, p.kind) for p in error.problems), error.total
    return {name: columns[name] for name in columns}, rows


def _same_outcome(left: Any, right: Any) -> None:
    if isinstance(left[0], list) or isinstance(right[0], list):
        assert left == right
        return
    assert left[1] == right[1]
    for name, values in left[0].items():
        other = right[0][name]
        assert values.dtype == other.dtype
        np.testing.assert_array_equal(values, other)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=_columns(),
    values=st.lists(_VALUES, min_size=1, max_size=45),
    reject=st.booleans(),
    ranges=st.sampled_from(["ignore", "warn", "refuse"]),
)
def test_a_frame_and_a_request_of_the_same_values_agree(
    column: InputColumn, values: list[Any], reject: bool, ranges: str
) -> None:
    contract = InputContract((column,), reject_unseen=reject, ranges=ranges)  # type: ignore[arg-type]
    as_json = _outcome(lambda: decode_columnar({"c": values}, contract))
    as_records = _outcome(lambda: decode_records([{"c": value} for value in values], contract))
    frame = pd.DataFrame({"c": pd.Series(values, dtype=object)})
    as_frame = _outcome(lambda: decode_frame(frame, contract))
    _same_outcome(as_json, as_frame)
    _same_outcome(as_records, as_frame)
    if column.kind == "categorical" and not isinstance(as_json[0], list):
        decoded = as_json[0]["c"].tolist()
        pipeline = [None if text is np.nan else text for text in category_values(values)]
        assert decoded == pipeline  # what serving accepts is what the pipeline encodes


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats() | st.none(), min_size=1, max_size=45),
    nullable=st.booleans(),
    categorical=st.booleans(),
)
def test_a_float64_frame_column_agrees_with_json_numbers(
    values: list[float | None], nullable: bool, categorical: bool
) -> None:
    kind = "categorical" if categorical else "numeric"
    contract = InputContract((InputColumn("c", kind, nullable=nullable, min=0.0, max=9.0),))  # type: ignore[arg-type]
    frame = pd.DataFrame({"c": pd.Series(values, dtype=np.float64)})
    _same_outcome(
        _outcome(lambda: decode_columnar({"c": values}, contract)),
        _outcome(lambda: decode_frame(frame, contract)),
    )


def _frame_and_request(value: Any, column: InputColumn) -> tuple[Any, Any]:
    contract = InputContract((column,), reject_unseen=True)
    frame = pd.DataFrame({"c": pd.Series([value], dtype=object)})
    return _outcome(lambda: decode_records({"c": value}, contract)), _outcome(
        lambda: decode_frame(frame, contract)
    )


@pytest.mark.parametrize(
    ("value", "known", "text"),
    [
        (1e20, "1e+20", "1e+20"),
        (1e16, "10000000000000000", "10000000000000000"),
        (-0.0, "0", "0"),
        (1.0, "1", "1"),
        (1, "1", "1"),
        (2**63, "9223372036854775808", "9223372036854775808"),
        (2**64, "18446744073709551616", "18446744073709551616"),
        (-(2**63), "-9223372036854775808", "-9223372036854775808"),
        (2.0**63, "9.223372036854776e+18", "9.223372036854776e+18"),
    ],
)
def test_numbers_as_categories(value: Any, known: str, text: str) -> None:
    column = InputColumn("c", "categorical", categories=frozenset({known}), recorded="float")
    request, frame = _frame_and_request(value, column)
    assert request[0]["c"].tolist() == frame[0]["c"].tolist() == [text]


def test_1e20_seen_in_training_is_accepted_at_serving() -> None:
    """The case that started it: training recorded '1e+20', serving decoded another text."""
    training = pd.DataFrame({"code": [1e20, 20.0, 20.0]})
    schema = infer_schema(training, categorical=["code"])
    contract = InputContract.from_schema(schema, ["code"], reject_unseen=True)
    columns, _ = decode_records([{"code": 1e20}, {"code": 20}], contract)
    assert columns["code"].tolist() == ["1e+20", "20"]
    assert validate_frame(training, schema) == []


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, "wrong_type"),
        (math.nan, "null_value"),
        (None, "null_value"),
        (math.inf, "wrong_type"),
        (10**400, "wrong_type"),
        ("12", "wrong_type"),
    ],
)
def test_odd_numbers(value: Any, kind: str) -> None:
    column = InputColumn("c", "numeric", nullable=False, recorded="float")
    request, frame = _frame_and_request(value, column)
    assert request == frame == ([(0, "c", kind)], 1)


def test_booleans() -> None:
    flag = InputColumn(
        "c", "categorical", categories=frozenset({"True", "False"}), recorded="boolean"
    )
    for value, outcome in [(True, ["True"]), ("False", ["False"]), (1, None), (0.0, None)]:
        request, frame = _frame_and_request(value, flag)
        assert request == frame if outcome is None else request[0]["c"].tolist() == outcome
        if outcome is None:  # a number is not a flag: the pipeline would read "1"
            assert request == ([(0, "c", "wrong_type")], 1)
    number = InputColumn("c", "numeric", recorded="boolean")
    request, frame = _frame_and_request(True, number)
    assert request[0]["c"].tolist() == frame[0]["c"].tolist() == [1.0]


def test_frame_problems_are_grouped_with_rows_and_examples() -> None:
    contract = InputContract(
        (InputColumn("c", "categorical", categories=frozenset({"A"})),), reject_unseen=True
    )
    frame = pd.DataFrame({"c": ["A", "Z", "Q", "Z", "A", "R", "S", "T", "U"]})
    _, problems = check_frame_columns(frame, contract)
    (group,) = problems.groups.values()
    assert (group.kind, group.count, group.rows) == ("unseen_category", 7, [1, 2, 3, 5, 6])
    assert group.examples == ["Z", "Q", "R", "S", "T"]
