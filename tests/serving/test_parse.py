"""The protocol envelopes: V2 tensors, MLflow's scoring formats and CSV, each decoded
exactly as the same rows given as records."""

from __future__ import annotations

import contextlib
import csv
import io
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _contract_cases import ANY_PAYLOAD, ROW, SPEC, _problems, _same, columns_or_problems
from modelyard.contract import InputColumn, InputContract, RequestValidationError, decode_records
from modelyard.serving.protocols._parse import decode_csv, decode_mlflow, decode_v2


def _tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> Any:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


V2_ROW = [
    _tensor("size", "FP64", [120.5]),
    _tensor("rooms", "INT64", [3]),
    _tensor("town", "BYTES", ["alpha"]),
    _tensor("zone", "INT32", [20]),
    _tensor("garage", "BOOL", [True]),
    _tensor("sold", "BYTES", ["2024-05-31T12:00:00+02:00"]),
]


def test_v2_tensors_match_records() -> None:
    _same(decode_v2(V2_ROW, SPEC)[0], decode_records(ROW, SPEC)[0])
    nested = [{**tensor, "shape": [1, 1], "data": [tensor["data"]]} for tensor in V2_ROW]
    _same(decode_v2(nested, SPEC)[0], decode_records(ROW, SPEC)[0])
    wide = {
        "name": "table",
        "datatype": "BYTES",
        "shape": [2, 6],
        "parameters": {"columns": list(ROW)},
        "data": [*ROW.values(), *ROW.values()],
    }
    _same(decode_v2([wide], SPEC)[0], decode_records([ROW, ROW], SPEC)[0])


def test_v2_problems() -> None:
    wrong_type = [_tensor("size", "BYTES", ["120"]), *V2_ROW[1:]]
    with pytest.raises(
        RequestValidationError,
        match=r"column 'size': datatype BYTES does not fit a numeric column; send FP64 or INT64",
    ):
        decode_v2(wrong_type, SPEC)
    assert _problems(decode_v2, wrong_type, SPEC) == [(None, "size", "wrong_type")]
    uneven = [_tensor("size", "FP64", [1.0, 2.0]), *V2_ROW[1:]]
    with pytest.raises(RequestValidationError, match=r"inputs\[1\] has 1 rows, inputs\[0\] 2"):
        decode_v2(uneven, SPEC)
    bad_shape = [_tensor("size", "FP64", [1.0, 2.0], shape=[3]), *V2_ROW[1:]]
    with pytest.raises(RequestValidationError, match=r"'data' has 2 values, shape \[3\] needs 3"):
        decode_v2(bad_shape, SPEC)
    with pytest.raises(RequestValidationError, match="'datatype' must be one of BOOL, BYTES"):
        decode_v2([_tensor("size", "DOUBLE", [1.0]), *V2_ROW[1:]], SPEC)
    with pytest.raises(RequestValidationError, match=r"needs parameters.columns naming its 2"):
        decode_v2([_tensor("size", "FP64", [1.0, 2.0], shape=[1, 2])], SPEC)
    assert _problems(decode_v2, V2_ROW[1:], SPEC) == [(None, "size", "missing_column")]
    assert _problems(decode_v2, [*V2_ROW, V2_ROW[0]], SPEC) == [(None, "size", "malformed")]
    assert _problems(decode_v2, {"inputs": V2_ROW}, SPEC) == [(None, None, "malformed")]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())], "index": [0]}},
        {"dataframe_records": [ROW], "params": {"threshold": 0.3}},
        {"instances": [ROW]},
        {"instances": [list(ROW.values())]},
        {"inputs": [ROW]},
        {"inputs": {name: [value] for name, value in ROW.items()}},
        {"inputs": [list(ROW.values())]},
    ],
    ids=["split", "records", "instances", "instances-lists", "inputs", "inputs-columns", "lists"],
)
def test_mlflow_formats_match_records(payload: dict[str, Any]) -> None:
    payload = orjson.loads(orjson.dumps(payload))
    columns, rows = decode_mlflow(payload, SPEC)
    assert rows == 1
    _same(columns, decode_records(ROW, SPEC)[0])


def test_mlflow_needs_exactly_one_format_key() -> None:
    accepted = "'dataframe_split', 'dataframe_records', 'instances', 'inputs'"
    with pytest.raises(RequestValidationError, match=f"expected exactly one of {accepted}"):
        decode_mlflow({"instances": [ROW], "inputs": [ROW]}, SPEC)
    with pytest.raises(RequestValidationError, match="found: 'data'"):
        decode_mlflow({"data": [ROW]}, SPEC)
    with pytest.raises(RequestValidationError, match="one per model input, in order: size, rooms"):
        decode_mlflow({"instances": [[1.0, 2]]}, SPEC)
    with pytest.raises(RequestValidationError, match="must be an object {columns, data}"):
        decode_mlflow({"dataframe_split": {"data": [[1]]}}, SPEC)
    with pytest.raises(RequestValidationError, match="different numbers of values"):
        decode_mlflow({"inputs": {**{k: [v] for k, v in ROW.items()}, "size": [1, 2]}}, SPEC)
    single = InputContract((InputColumn("size", "numeric"),))
    assert decode_mlflow({"instances": [1.5, 2]}, single)[0]["size"].tolist() == [1.5, 2.0]


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def test_csv_parses_each_column_by_its_kind() -> None:
    text = _csv(
        [
            ["house_id", *ROW],
            [1, "120.5", "3", "alpha", "20.0", "true", "2024-05-31T12:00:00+02:00"],
            [2, "80", "", "beta", "", "", ""],
        ]
    )
    columns, rows = decode_csv("\ufeff" + text, SPEC)
    assert rows == 2
    second = {"size": 80.0, "town": "beta", **dict.fromkeys(["rooms", "zone", "garage", "sold"])}
    _same(columns, decode_records([ROW, second], SPEC)[0])
    big = _csv([list(ROW), *[["1.5", "2", "beta", "60", "False", "2020-01-01"]] * 40])
    assert decode_csv(big, SPEC)[0]["size"].tolist() == [1.5] * 40


def test_csv_problems() -> None:
    text = _csv([list(ROW), ["abc", "3", "alpha", "20", "True", ""]])
    with pytest.raises(
        RequestValidationError, match=r"row 0, column 'size': expected a number, found 'abc'"
    ):
        decode_csv(text, SPEC)
    assert _problems(decode_csv, "", SPEC) == [(None, None, "empty")]
    assert _problems(decode_csv, _csv([list(ROW)]), SPEC) == [(None, None, "empty")]
    ragged = _csv([list(ROW), ["1", "2"]])
    with pytest.raises(
        RequestValidationError, match="has 2 values, expected 6 .one per name in the header"
    ):
        decode_csv(ragged, SPEC)
    many = _csv([list(ROW), *[["1", "2", "alpha", "20", "True", ""]] * 301])
    assert _problems(decode_csv, many, SPEC) == [(None, None, "too_many_rows")]


_CSV_TEXT = st.lists(
    st.sampled_from(["a", "b", ",", '"', "\n", "\r", "\x00", " ", "1.5", "e-", "alpha", "20"])
).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_CSV_TEXT | st.text(max_size=40))
def test_any_text_gives_columns_or_a_request_validation_error(text: str) -> None:
    header = ",".join(SPEC.names) + "\n"
    for candidate in (text, header + text):
        with contextlib.suppress(RequestValidationError):
            columns, rows = decode_csv(candidate, SPEC)
            assert all(len(values) == rows for values in columns.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=ANY_PAYLOAD)
def test_any_json_gives_columns_or_a_request_validation_error(payload: Any) -> None:
    for decode in (decode_mlflow, decode_v2):
        columns_or_problems(decode, payload)
