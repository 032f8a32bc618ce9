"""Limits and refusals of the JSON front: bounded work whatever a request holds."""

from __future__ import annotations

from typing import Any

import pytest

from _contract_cases import ROW, SPEC, _problems, make_version
from modelyard.contract import (
    DataSchema,
    InputColumn,
    InputContract,
    RequestValidationError,
    decode_columnar,
    decode_records,
    decode_split,
)
from modelyard.registry.records import ModelVersion


def test_too_many_columns_is_refused_before_the_values_are_read() -> None:
    narrow = InputContract(SPEC.columns, max_columns=8)
    wide = {**ROW, **{f"extra{i}": i for i in range(3)}}
    assert _problems(decode_records, [ROW, wide], narrow) == [(None, None, "too_many_columns")]
    names = [*ROW, "a", "b", "c"]
    assert _problems(decode_split, names, [[*ROW.values(), 1, 2, 3]], narrow) == [
        (None, None, "too_many_columns")
    ]
    assert _problems(decode_columnar, dict(wide), narrow) == [(None, None, "too_many_columns")]
    decode_records([{**ROW, "extra": 1}], narrow)  # within the limit
    with pytest.raises(Exception, match="max_columns .3. must be at least the model's 6"):
        InputContract(SPEC.columns, max_columns=3)


def test_duplicate_names_are_found_in_linear_time() -> None:
    names = [f"n{i}" for i in range(20_000)] + ["n5", "n7"]
    with pytest.raises(RequestValidationError, match="columns 'n5', 'n7' are named more than once"):
        decode_split(names, [[0] * len(names)], InputContract(SPEC.columns, max_columns=50_000))


def test_suggestions_come_from_a_bounded_set_of_names() -> None:
    junk = {f"junk{i}": 1 for i in range(1_500)}
    record = {**{k: v for k, v in ROW.items() if k != "size"}, **junk, "Size": 1.0}
    contract = InputContract(SPEC.columns, max_columns=5_000)
    with pytest.raises(RequestValidationError) as caught:
        decode_records(record, contract)
    # 'Size' comes after 1,500 junk keys: past the names compared, so no suggestion
    assert caught.value.problems[0].message == "column 'size': missing"
    with pytest.raises(RequestValidationError, match="did you mean 'Size'"):
        decode_records({**{k: v for k, v in ROW.items() if k != "size"}, "Size": 1.0}, contract)


@pytest.mark.parametrize("column", ["town", "sold"])
def test_lone_surrogates_are_refused_where_text_is_accepted(column: str) -> None:
    for rows in (1, 40):  # the value-by-value and the whole-column paths
        assert _problems(decode_records, [{**ROW, column: "ok\ud800"}] * rows, SPEC)[0] == (
            0,
            column,
            "invalid_text",
        )


def test_long_text_is_refused() -> None:
    town = InputColumn("town", "categorical", max_length=10)
    contract = InputContract((town,))
    assert _problems(decode_records, {"town": "x" * 11}, contract) == [(0, "town", "text_too_long")]
    assert _problems(decode_records, [{"town": "x" * 11}] * 40, contract)[0][2] == "text_too_long"
    decode_records({"town": "x" * 10}, contract)


def test_the_text_limit_follows_the_longest_training_category() -> None:
    schema = DataSchema.model_validate(
        {
            "columns": [
                {"name": "short", "kind": "string", "nullable": False, "categories": ["ab"]},
                {"name": "long", "kind": "string", "nullable": False, "categories": ["x" * 100]},
                {"name": "free", "kind": "string", "nullable": False},
            ]
        }
    )
    contract = InputContract.from_schema(schema, ["short", "long", "free"], max_text_length=600)
    assert [column.max_length for column in contract.columns] == [256, 600, 600]


def _version(data: dict[str, Any]) -> ModelVersion:
    schema = {"columns": [{"name": "x", "kind": "float", "nullable": False, "min": 0, "max": 10}]}
    features = {"feature_order": ["x"], "numeric": ["x"]}
    return make_version({"features": features, "schema": schema}, {"data": data})


def test_ranges_follow_the_spec() -> None:
    refuse = InputContract.from_version(_version({"out_of_range": "refuse"}))
    assert _problems(decode_records, [{"x": 5}, {"x": 11}, {"x": -1}], refuse) == [
        (1, "x", "out_of_range"),
        (2, "x", "out_of_range"),
    ]
    with pytest.raises(RequestValidationError, match=r"11 is outside the training range \[0, 10\]"):
        decode_records({"x": 11}, refuse)
    tolerant = InputContract.from_version(
        _version({"out_of_range": "refuse", "range_tolerance": 0.1})
    )
    decode_records({"x": 11}, tolerant)
    warn = InputContract.from_version(_version({}))  # the default: warn
    assert warn.ranges == "warn"
    columns, _ = decode_records([{"x": 11}, {"x": 5}, {"x": -3}], warn)
    assert warn.count_out_of_range(columns) == 2
    ignore = InputContract.from_version(_version({"out_of_range": "ignore"}))
    assert ignore.count_out_of_range(decode_records({"x": 99}, ignore)[0]) == 0
