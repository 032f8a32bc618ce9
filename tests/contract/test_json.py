"""The contract's JSON front: records, split and columnar bodies into validated columns."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _contract_cases import (
    ANY_PAYLOAD,
    ROW,
    SPEC,
    _problems,
    _same,
    columns_or_problems,
    make_version,
)
from _projects import regression_project
from modelyard import api
from modelyard.contract import (
    InputColumn,
    InputContract,
    RequestValidationError,
    decode_columnar,
    decode_records,
    decode_split,
)
from modelyard.errors import DataValidationError, ModelyardError
from modelyard.features.transformers import category_values
from modelyard.models.runtime import SklearnRuntime
from modelyard.registry.records import ModelVersion
from modelyard.settings import Settings
from modelyard.types import ColumnBlocks, concat_columns

# -- records and the value rules --------------------------------------------------------


def test_records_decode_to_one_typed_array_per_input_in_feature_order() -> None:
    second = {"size": 80, "rooms": None, "town": "beta", "zone": 20.0, "garage": None}
    columns, rows = decode_records([ROW, {**second, "sold": None, "house_id": 7}], SPEC)
    assert rows == 2
    assert list(columns) == SPEC.names
    np.testing.assert_array_equal(columns["size"], [120.5, 80.0])
    assert columns["size"].dtype == np.float64
    assert columns["rooms"][0] == 3.0 and math.isnan(columns["rooms"][1])
    assert columns["town"].dtype == object and columns["town"].tolist() == ["alpha", "beta"]
    assert columns["zone"].tolist() == ["20", "20"]
    assert columns["garage"].tolist() == ["True", None]
    assert columns["sold"].dtype == np.dtype("datetime64[ns]")
    assert columns["sold"][0] == np.datetime64("2024-05-31T10:00:00")  # naive UTC
    assert np.isnat(columns["sold"][1])


def test_one_object_is_one_row() -> None:
    columns, rows = decode_records(ROW, SPEC)
    assert rows == 1
    _same(columns, decode_records([ROW], SPEC)[0])


def test_numbers_for_a_categorical_column_follow_the_training_rule() -> None:
    values: list[Any] = [20, 20.0, "20", 2.5, True, False, 7.0, 1e20, -3, "x"]
    column = InputColumn("code", "categorical", categories=frozenset({"True", "20"}))
    spec = InputContract((column,))  # unseen categories accepted
    decoded = decode_records([{"code": value} for value in values], spec)[0]["code"]
    assert decoded.tolist() == category_values(values).tolist()


def test_a_fraction_in_an_integer_column_is_accepted() -> None:
    columns, _ = decode_records({**ROW, "rooms": 3.5}, SPEC)
    assert columns["rooms"].tolist() == [3.5]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12.5", r"expected a number, found '12.5' \(text: send numbers without quotes\)"),
        ("abc", r"expected a number, found 'abc'$"),
        (True, r"expected a number, found true \(JSON booleans are not numbers\)"),
        (math.inf, r"expected a finite 64-bit number, found inf"),
        (10**400, r"expected a finite 64-bit number"),
        ([1.0], r"expected a number, found a list"),
        (None, r"null, but training had no missing values here; send a value"),
        (math.nan, r"null, but training had no missing values here"),
    ],
)
def test_a_bad_number_is_reported_with_what_was_found(value: Any, message: str) -> None:
    with pytest.raises(RequestValidationError, match=r"row 0, column 'size': " + message):
        decode_records({**ROW, "size": value}, SPEC)


def test_every_problem_is_reported_with_row_column_and_kind() -> None:
    records = [
        ROW,
        {**ROW, "size": "abc", "town": "gamma"},
        {**ROW, "town": None, "garage": 1.5},
        {key: value for key, value in ROW.items() if key != "rooms"},
        {**ROW, "sold": "yesterday", "zone": {"a": 1}},
    ]
    with pytest.raises(RequestValidationError) as caught:
        decode_records(records, SPEC)
    error = caught.value
    assert [(p.row, p.column, p.kind) for p in error.problems] == [
        (1, "size", "wrong_type"),
        (3, "rooms", "missing_column"),
        (1, "town", "unseen_category"),
        (2, "town", "null_value"),
        (4, "zone", "wrong_type"),
        (2, "garage", "wrong_type"),  # a number in a true/false column
        (4, "sold", "wrong_type"),
    ]
    lines = str(error).splitlines()
    assert lines[0] == "the request does not fit the model's inputs (7 problems):"
    assert lines[1] == "  row 1, column 'size': expected a number, found 'abc'"
    assert "'gamma' was never seen in training; known: 'alpha', 'beta'" in lines[3]
    assert "found 'yesterday' (not ISO-8601)" in lines[7]
    assert isinstance(error, DataValidationError) and error.http_status == 422


def test_unseen_categories_pass_when_the_spec_ignores_them() -> None:
    lenient = InputContract(SPEC.columns, reject_unseen=False, max_rows=10)
    columns, _ = decode_records({**ROW, "town": "gamma", "zone": 45}, lenient)
    assert columns["town"].tolist() == ["gamma"] and columns["zone"].tolist() == ["45"]
    with pytest.raises(RequestValidationError, match="'45' was never seen"):
        decode_records({**ROW, "zone": 45}, SPEC)


def test_booleans_need_true_false_categories() -> None:
    with pytest.raises(
        RequestValidationError,
        match=r"column 'town': expected text, found true; training had no true/false values",
    ):
        decode_records({**ROW, "town": True}, SPEC)
    flags = InputContract((InputColumn("flag", "numeric", recorded="boolean"),))
    assert decode_records([{"flag": True}, {"flag": 0}], flags)[0]["flag"].tolist() == [1.0, 0.0]


def test_dates_must_be_iso_and_in_range() -> None:
    for value, reason in [
        ("31/05/2024", "not ISO-8601"),
        ("9999-01-01", "outside the years 1678 to 2261"),
        (20240531, None),
    ]:
        with pytest.raises(RequestValidationError, match="expected an ISO-8601 date") as caught:
            decode_records({**ROW, "sold": value}, SPEC)
        assert reason is None or reason in str(caught.value)
    sold = decode_records({**ROW, "sold": "2024-05-31"}, SPEC)[0]["sold"]
    assert sold[0] == np.datetime64("2024-05-31T00:00:00")


def test_a_column_missing_from_every_row_is_one_problem_with_a_suggestion() -> None:
    records = [{("Size" if key == "size" else key): value for key, value in ROW.items()}] * 3
    with pytest.raises(
        RequestValidationError, match=r"column 'size': missing; did you mean 'Size'"
    ):
        decode_records(records, SPEC)
    assert _problems(decode_records, records, SPEC) == [(None, "size", "missing_column")]


def test_row_limits_and_shapes() -> None:
    assert _problems(decode_records, [ROW] * 301, SPEC) == [(None, None, "too_many_rows")]
    assert _problems(decode_records, [], SPEC) == [(None, None, "empty")]
    assert _problems(decode_records, "rows", SPEC) == [(None, None, "malformed")]
    assert _problems(decode_records, [ROW, [1, 2]], SPEC) == [(1, None, "malformed")]
    with pytest.raises(RequestValidationError, match="301 rows, more than the 300 allowed"):
        decode_records([ROW] * 301, SPEC)


def test_problems_are_counted_but_only_the_first_50_listed() -> None:
    with pytest.raises(RequestValidationError) as caught:
        decode_records([{**ROW, "size": "x", "town": "y"}] * 200, SPEC)
    assert caught.value.total == 400
    assert len(caught.value.problems) == 50
    assert "(400 problems, the first 50 listed)" in str(caught.value)


def test_large_requests_decode_exactly_like_row_by_row() -> None:
    rng = np.random.default_rng(1)
    records = [
        {
            "size": float(rng.uniform(10, 300)) if i % 3 else int(rng.integers(10, 300)),
            "rooms": None if i % 7 == 0 else int(rng.integers(1, 6)),
            "town": str(rng.choice(["alpha", "beta"])),
            "zone": None if i % 5 == 0 else str(rng.choice(["20", "60"])),
            "garage": None if i % 4 == 0 else bool(i % 2),
            "sold": f"2023-0{1 + i % 9}-1{i % 10}T0{i % 10}:30:00Z",
        }
        for i in range(250)
    ]
    together, rows = decode_records(records, SPEC)
    assert rows == 250
    one_by_one = [decode_records(record, SPEC)[0] for record in records]
    for name in SPEC.names:
        expected = np.concatenate([columns[name] for columns in one_by_one])
        assert together[name].dtype == expected.dtype
        np.testing.assert_array_equal(together[name], expected)
    # a bad cell deep in a large column is still found, with its row
    records[177] = {**records[177], "size": "big", "town": "gamma", "rooms": math.inf}
    assert _problems(decode_records, records, SPEC) == [
        (177, "size", "wrong_type"),
        (177, "rooms", "wrong_type"),
        (177, "town", "unseen_category"),
    ]


# -- other shapes -----------------------------------------------------------------------


def test_split_matches_records_and_checks_its_shape() -> None:
    names = list(ROW)
    _same(decode_split(names, [list(ROW.values())], SPEC)[0], decode_records(ROW, SPEC)[0])
    shuffled = names[::-1]
    _same(
        decode_split(shuffled, [[ROW[name] for name in shuffled]], SPEC)[0],
        decode_records(ROW, SPEC)[0],
    )
    with pytest.raises(RequestValidationError, match=r"row 1: has 2 values, expected 6"):
        decode_split(names, [list(ROW.values()), [1, 2]], SPEC)
    with pytest.raises(RequestValidationError, match="'columns' to be a list of names"):
        decode_split([1, 2], [[1, 2]], SPEC)
    with pytest.raises(RequestValidationError, match="columns 'size' are named more than once"):
        decode_split([*names, "size"], [[*ROW.values(), 1]], SPEC)
    assert _problems(decode_split, names[1:], [list(ROW.values())[1:]], SPEC) == [
        (None, "size", "missing_column")
    ]


def test_columnar_takes_a_scalar_as_one_row() -> None:
    _same(decode_columnar(dict(ROW), SPEC)[0], decode_records(ROW, SPEC)[0])


# -- from a registered version ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelVersion, Any]:
    root = tmp_path_factory.mktemp("decode")
    home = root / "home"
    settings = Settings(home=home, registry_url=f"sqlite:///{home / 'registry.db'}")
    api.train(regression_project(root / "houses"), settings=settings)
    return api.show("houses:1", settings=settings), api.load_model("houses:1", settings=settings)


def test_input_spec_from_a_trained_version_feeds_its_pipeline(
    trained: tuple[ModelVersion, Any],
) -> None:
    version, pipeline = trained
    spec = InputContract.from_version(version, max_rows=100)
    assert spec.names == ["size", "rooms", "town"]
    assert [(c.kind, c.nullable, c.integer) for c in spec.columns] == [
        ("numeric", False, False),
        ("numeric", False, True),
        ("categorical", False, False),
    ]
    assert spec.columns[2].categories == frozenset({"alpha", "beta", "gamma", "delta"})
    assert spec.reject_unseen is False and spec.max_rows == 100
    records = [
        {"house_id": 1, "size": 95.5, "rooms": 3, "town": "beta"},
        {"house_id": 2, "size": 210, "rooms": 5.0, "town": "omega"},
    ]
    columns, rows = decode_records(orjson.loads(orjson.dumps(records)), spec)
    output = SklearnRuntime(pipeline, spec.names).predict(columns, rows)
    expected = pipeline.predict(pd.DataFrame(records)[spec.names])
    np.testing.assert_allclose(output.values, expected)


def test_input_spec_reads_datetime_columns_and_unknown_error() -> None:
    schema = {
        "columns": [
            {"name": "plan", "kind": "string", "nullable": True, "categories": ["a", "b"]},
            {"name": "signup", "kind": "string", "nullable": False, "categories": ["2023-01-01"]},
        ]
    }
    features = {"feature_order": ["plan", "signup", "spend"], "numeric": ["spend"]}
    features["categorical"] = ["plan"]
    version = make_version(
        {"features": features, "schema": schema}, {"features": {"encode": {"unknown": "error"}}}
    )
    spec = InputContract.from_version(version, max_rows=5)
    assert spec.reject_unseen is True
    plan, signup, spend = spec.columns
    assert (plan.kind, plan.nullable, plan.categories) == ("categorical", True, frozenset("ab"))
    assert (signup.kind, signup.nullable, signup.categories) == ("datetime", False, None)
    assert (spend.kind, spend.nullable, spend.recorded) == ("numeric", True, None)
    with pytest.raises(ModelyardError, match=r"version m:1 records no input columns"):
        InputContract.from_version(make_version({}, {}), max_rows=5)
    with pytest.raises(ModelyardError, match="max_rows must be at least 1"):
        InputContract.from_version(version, max_rows=0)


# -- anything JSON can hold -------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=ANY_PAYLOAD)
def test_any_json_gives_columns_or_a_request_validation_error(payload: Any) -> None:
    for decode in (decode_records, decode_columnar):
        columns_or_problems(decode, payload)
    if isinstance(payload, dict):
        with contextlib.suppress(RequestValidationError):
            decode_split(payload.get("columns"), payload.get("data"), SPEC)


# -- the fast path of small requests ----------------------------------------------------

_NUMBER = (
    st.floats()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.none()
    | st.booleans()
    | st.just("12.5")
)
_VALUES = {
    "size": _NUMBER,
    "rooms": _NUMBER,
    "town": st.sampled_from(["alpha", "beta", "omega"]) | st.none() | st.integers(0, 3),
    "zone": st.sampled_from(["20", "60", "2.5", "7", 20, 20.0, 2.5]) | st.none() | st.booleans(),
    "garage": st.booleans() | st.sampled_from(["True", "False", "maybe"]) | st.none(),
    "sold": st.sampled_from(["2024-05-31", "2024-05-31T12:00:00+02:00", "soon"]) | st.none(),
}


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.fixed_dictionaries(_VALUES), min_size=1, max_size=6),
    reject_unseen=st.booleans(),
)
def test_small_requests_decode_like_the_value_by_value_path(
    rows: list[dict[str, Any]], reject_unseen: bool
) -> None:
    """Records and split rows take the whole-block checks; columnar input never does."""
    spec = InputContract(SPEC.columns, reject_unseen=reject_unseen, max_rows=300)
    by_column = {name: [row[name] for row in rows] for name in spec.names}
    split = [[row[name] for name in spec.names] for row in rows]
    outcomes = []
    for decode, payload in (
        (decode_columnar, (by_column,)),
        (decode_records, (rows,)),
        (decode_split, (spec.names, split)),
    ):
        try:
            columns, count = decode(*payload, spec)  # type: ignore[operator]
        except RequestValidationError as error:
            outcomes.append([(p.row, p.column, p.kind, p.message) for p in error.problems])
        else:
            assert count == len(rows)
            outcomes.append(columns)
    careful, *fast = outcomes
    for outcome in fast:
        if isinstance(careful, list):
            assert outcome == careful
        else:
            assert not isinstance(outcome, list), outcome
            _same(outcome, careful)


def test_plain_valid_rows_skip_the_value_by_value_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.contract import json as front

    spec = InputContract(SPEC.columns[:5], reject_unseen=True)
    rows = [
        {"size": 80.5, "rooms": None, "town": "alpha", "zone": "20", "garage": None},
        {"size": 120, "rooms": 3, "town": "beta", "zone": "2.5", "garage": "True"},
    ]

    def careful(*args: Any) -> Any:
        raise AssertionError("the value-by-value path was taken")

    monkeypatch.setattr(front, "decode_column", careful)
    columns, rows_count = decode_records(rows, spec)
    assert rows_count == 2
    assert isinstance(columns, ColumnBlocks)
    np.testing.assert_array_equal(columns["size"], [80.5, 120.0])
    assert math.isnan(columns["rooms"][0]) and columns["rooms"][1] == 3.0
    assert columns["zone"].tolist() == ["20", "2.5"]
    assert columns["garage"].tolist() == [None, "True"]
    columns, _ = decode_split(spec.names, [list(row.values()) for row in rows], spec)
    assert columns["town"].tolist() == ["alpha", "beta"]
    with pytest.raises(AssertionError, match="value-by-value"):  # unseen: checked one by one
        decode_records([{**rows[0], "town": "omega"}], spec)


def test_decoded_blocks_read_as_one_array_per_input() -> None:
    columns, rows = decode_records([ROW, {**ROW, "size": 64.0, "town": "beta"}], SPEC)
    assert isinstance(columns, ColumnBlocks)
    numeric, categorical, dates = columns.blocks
    assert numeric.shape == (2, 2) and numeric.flags.c_contiguous
    assert categorical.shape == (2, 3) and categorical.dtype == object
    assert dates.shape == (2, 1) and dates.dtype == np.dtype("datetime64[ns]")
    assert len(columns) == 6 and list(columns) == SPEC.names
    np.testing.assert_array_equal(columns["size"], [120.5, 64.0])
    assert columns["town"].tolist() == ["alpha", "beta"]
    again, _ = decode_records([{**ROW, "size": 1.0}], SPEC)
    joined = ColumnBlocks.concat([columns, again])  # type: ignore[list-item]
    assert joined.rows == 3 and joined["size"].tolist() == [120.5, 64.0, 1.0]
    np.testing.assert_array_equal(joined["sold"], np.repeat(columns["sold"][:1], 3))
    copied = ColumnBlocks.of(SPEC.layout, dict(joined), 3)
    _same(copied, joined)
    other = InputContract(SPEC.columns, max_rows=5)  # equal columns, another layout
    elsewhere, _ = decode_records([ROW], other)
    with pytest.raises(ValueError, match="one layout"):
        ColumnBlocks.concat([columns, elsewhere])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="does not hold 2 float64 columns of 3 rows"):
        ColumnBlocks(SPEC.layout, columns.blocks, 3)
    mixed = concat_columns([columns, dict(again)])
    assert not isinstance(mixed, ColumnBlocks) and mixed["size"].tolist() == [120.5, 64.0, 1.0]


def test_every_overflowing_ratio_is_told_by_ratio_then_row() -> None:
    from modelyard.contract import DerivedRatio

    columns = tuple(InputColumn(name, "numeric") for name in ("a", "b", "c"))
    ratios = (DerivedRatio("a_per_b", "a", "b"), DerivedRatio("c_per_a", "c", "a"))
    contract = InputContract(columns, ratios=ratios)
    rows = [
        {"a": 1e300, "b": 1e-300, "c": 1.0},  # a / b overflows
        {"a": 1.0, "b": 2.0, "c": 3.0},  # fine
        {"a": 1e-320, "b": 1e-300, "c": 1e300},  # c / a overflows; a / b does not
        {"a": 1e300, "b": 1e-100, "c": 1e300},  # both
        {"a": 5.0, "b": 0.0, "c": None},  # a zero denominator is missing, not infinite
    ]
    with pytest.raises(RequestValidationError) as caught:
        decode_records(rows, contract)
    told = [(p.row, p.column, p.kind) for p in caught.value.problems]
    assert told == [
        (0, "b", "non_finite_feature"),
        (3, "b", "non_finite_feature"),
        (2, "a", "non_finite_feature"),
    ]
    assert "'a_per_b' (a / b = 1e+300 / 1e-300)" in caught.value.problems[0].message
    assert "'c_per_a' (c / a = 1e+300 / " in caught.value.problems[2].message
    decode_records([rows[1], rows[4]], contract)  # the good rows alone pass
