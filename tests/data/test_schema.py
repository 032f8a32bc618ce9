"""The recorded input schema: inference, every validation problem, target checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _projects import AMES_CSV
from modelyard.data.schema import (
    ColumnSchema,
    DataSchema,
    Problem,
    check_frame,
    check_target,
    infer_schema,
    validate_frame,
)
from modelyard.errors import DataError, DataValidationError


@pytest.fixture
def train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rooms": [2, 3, 4, 3],
            "area": [50.5, 80.0, 120.25, 75.0],
            "zone": pd.Series(["A", "B", "A", "C"], dtype="str"),
            "garage": [True, False, True, True],
            "built": pd.to_datetime(["2001-05-01", "1999-01-01", "2010-12-31", "2005-06-15"]),
            "subclass": [20, 60, 20, 120],
            "lot": [10.0, np.nan, 12.0, 11.0],
            "note": pd.Series(["x", None, "y", "z"], dtype=object),
        }
    )


@pytest.fixture
def schema(train: pd.DataFrame) -> DataSchema:
    return infer_schema(train, categorical=["subclass"])


def kinds(problems: list[Problem]) -> list[tuple[str | None, str]]:
    return [(p.column, p.kind) for p in problems]


# -- infer ------------------------------------------------------------------------------


def test_infer_kinds_categories_ranges(schema: DataSchema) -> None:
    assert schema.names == ["rooms", "area", "zone", "garage", "built", "subclass", "lot", "note"]
    assert schema.get("rooms") == ColumnSchema(
        name="rooms", kind="integer", nullable=False, categories=None, min=2.0, max=4.0
    )
    assert schema.get("zone") == ColumnSchema(
        name="zone", kind="string", nullable=False, categories=["A", "B", "C"]
    )
    garage = schema.get("garage")
    assert garage is not None and garage.kind == "boolean"
    assert garage.categories == ["False", "True"]
    built = schema.get("built")
    assert built is not None and (built.kind, built.min, built.categories) == (
        "datetime",
        None,
        None,
    )
    subclass = schema.get("subclass")
    assert subclass is not None and subclass.categories == ["120", "20", "60"]
    assert (subclass.min, subclass.max) == (20.0, 120.0)
    lot = schema.get("lot")
    assert lot is not None and (lot.kind, lot.nullable, lot.min, lot.max) == (
        "float",
        True,
        10.0,
        12.0,
    )
    note = schema.get("note")
    assert note is not None and (note.kind, note.nullable, note.categories) == (
        "string",
        True,
        ["x", "y", "z"],
    )
    assert schema.get("nope") is None


def test_infer_object_columns_by_value() -> None:
    frame = pd.DataFrame(
        {
            "ints": pd.Series([1, 2, None], dtype=object),
            "floats": pd.Series([1.5, 2, None], dtype=object),
            "flags": pd.Series([True, None, False], dtype=object),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
            "cat": pd.Categorical(["b", "a", "b"]),
            "inf": [1.0, np.inf, -2.0],
        }
    )
    schema = infer_schema(frame)
    assert [c.kind for c in schema.columns] == [
        "integer",
        "float",
        "boolean",
        "integer",
        "string",
        "float",
    ]
    assert schema.get("cat") is not None and schema.get("cat").categories == ["a", "b"]  # type: ignore[union-attr]
    inf = schema.get("inf")
    assert inf is not None and (inf.min, inf.max) == (-2.0, 1.0)


def test_infer_numeric_categories_use_text_form() -> None:
    frame = pd.DataFrame({"code": [20.0, 2.0, 2.5, np.nan]})
    column = infer_schema(frame, categorical=["code", "not-there"]).get("code")
    assert column is not None and column.categories == ["2", "2.5", "20"]


def test_infer_max_categories() -> None:
    frame = pd.DataFrame({"text": [f"v{i}" for i in range(30)]})
    assert infer_schema(frame, max_categories=29).columns[0].categories is None
    assert infer_schema(frame, max_categories=30).columns[0].categories is not None


def test_object_and_str_give_the_same_schema(train: pd.DataFrame) -> None:
    as_object = train.assign(zone=train["zone"].astype(object))
    assert infer_schema(as_object) == infer_schema(train)


def test_schema_json_round_trip(schema: DataSchema) -> None:
    data = json.loads(json.dumps(schema.model_dump(mode="json")))
    assert DataSchema.model_validate(data) == schema


def test_schema_is_frozen(schema: DataSchema) -> None:
    with pytest.raises(ValueError, match="frozen"):
        schema.columns[0].nullable = True  # type: ignore[misc]


# -- validate ---------------------------------------------------------------------------


def test_training_frame_is_valid(train: pd.DataFrame, schema: DataSchema) -> None:
    assert validate_frame(train, schema) == []
    check_frame(train, schema)


def test_safe_coercions_are_accepted(train: pd.DataFrame, schema: DataSchema) -> None:
    served = pd.DataFrame(
        {
            "rooms": [2.0, 4.0],  # integral floats into an integer column
            "area": [60, 100],  # integers into a float column
            "zone": pd.Series(["B", "A"], dtype=object),
            "garage": pd.Series(["True", False], dtype=object),  # text of a category
            "built": ["2003-01-01", "2004-02-02"],  # date strings into a datetime column
            "subclass": ["20", 60.0],  # numbers compare by their text form
            "lot": [11, None],
            "note": [None, None],
        }
    )
    assert validate_frame(served, schema) == []


def test_numbers_in_a_true_false_column_are_not_flags(
    train: pd.DataFrame, schema: DataSchema
) -> None:
    # The pipeline would read 1 as the category "1", not "True": refused, as at serving.
    (problem,) = validate_frame(train.assign(garage=[1, 0, 1, 1]), schema)
    assert problem.kind == "wrong_type" and problem.rows == [0, 1, 2, 3]
    assert "expects true/false values (boolean)" in problem.message


def test_every_problem_is_reported(train: pd.DataFrame, schema: DataSchema) -> None:
    served = pd.DataFrame(
        {
            "rooms": pd.Series([3, "many", 2.5], dtype=object),
            "area": [60.0, 1000.0, None],
            "zone": ["A", "Z", "Q"],
            "garage": [True, 2, False],
            "built": ["2001-01-01", "soon", 5],
            "subclass": [20, 75, "20"],
            "lot": [10.0, 11.0, 12.0],
            "extra": [1, 2, 3],
        }
    )
    problems = validate_frame(served, schema, allow_extra=False)
    assert kinds(problems) == [
        ("note", "missing_column"),
        ("extra", "extra_column"),
        ("rooms", "wrong_type"),
        ("area", "null_value"),
        ("area", "out_of_range"),
        ("zone", "unseen_category"),
        ("garage", "wrong_type"),
        ("built", "wrong_type"),
        ("subclass", "unseen_category"),
    ]
    by_kind = {(p.column, p.kind): p for p in problems}
    rooms = by_kind[("rooms", "wrong_type")]
    # 2.5 in an integer column is accepted (the pipeline computes in floats), as at serving
    assert rooms.rows == [1] and "'many'" in rooms.message and "whole numbers" in rooms.message
    assert by_kind[("area", "null_value")].rows == [2]
    assert by_kind[("area", "out_of_range")].rows == [1]
    assert "1000" in by_kind[("area", "out_of_range")].message
    zone = by_kind[("zone", "unseen_category")]
    assert (
        zone.rows == [1, 2]
        and "'Z', 'Q'" in zone.message
        and "known: 'A', 'B', 'C'" in zone.message
    )
    assert by_kind[("garage", "wrong_type")].rows == [1]
    assert by_kind[("built", "wrong_type")].rows == [1, 2]
    assert by_kind[("subclass", "unseen_category")].rows == [1]


def test_strings_in_numeric_column_name_a_bad_value(
    schema: DataSchema, train: pd.DataFrame
) -> None:
    served = train.assign(area=pd.Series(["big", "50", "small", "x"], dtype="str"))
    (problem,) = validate_frame(served, schema)
    assert problem.kind == "wrong_type" and problem.rows == [0, 1, 2, 3]
    assert (
        "column 'area' expects numbers (float) but has 4 other values, e.g. 'big'"
        in problem.message
    )


def test_range_tolerance_and_switch(train: pd.DataFrame, schema: DataSchema) -> None:
    served = train.assign(rooms=[1, 5, 3, 3])  # training range [2, 4], span 2
    assert kinds(validate_frame(served, schema)) == [("rooms", "out_of_range")]
    assert validate_frame(served, schema, range_tolerance=0.5) == []
    assert kinds(validate_frame(served, schema, range_tolerance=0.25)) == [
        ("rooms", "out_of_range")
    ]
    assert validate_frame(served, schema, check_ranges=False) == []


def test_unseen_categories_ignored(train: pd.DataFrame, schema: DataSchema) -> None:
    served = train.assign(zone=["Z", "A", "A", "A"], subclass=[999, 20, 20, 20])
    assert len(validate_frame(served, schema)) == 2
    assert validate_frame(served, schema, unseen_categories="ignore") == []


def test_columns_limits_the_check(train: pd.DataFrame, schema: DataSchema) -> None:
    features = train.drop(columns=["note"])
    assert validate_frame(features, schema, columns=["rooms", "zone"]) == []
    problems = validate_frame(features, schema, columns=["rooms"], allow_extra=False)
    assert {p.kind for p in problems} == {"extra_column"} and len(problems) == 6


def test_unknown_checked_column(schema: DataSchema, train: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"columns \['rom'\] are not in the recorded schema"):
        validate_frame(train, schema, columns=["rom"])


def test_missing_column_suggests_name(schema: DataSchema, train: pd.DataFrame) -> None:
    (problem,) = validate_frame(train.rename(columns={"rooms": "room"}), schema)
    assert problem.kind == "missing_column" and "did you mean 'room'" in problem.message


def test_empty_frame(schema: DataSchema, train: pd.DataFrame) -> None:
    problems = validate_frame(train.iloc[:0], schema)
    assert kinds(problems) == [(None, "empty")]


def test_check_frame_lists_every_problem(schema: DataSchema, train: pd.DataFrame) -> None:
    served = train.assign(zone=["Z", "A", "A", "A"]).drop(columns=["lot"])
    with pytest.raises(DataValidationError) as caught:
        check_frame(served, schema)
    lines = str(caught.value).splitlines()
    assert lines[0] == "the data does not match the recorded schema (2 problems):"
    assert lines[1] == (
        "  - column 'lot' is missing; the columns are: rooms, area, zone, garage, built, "
        "subclass, note"
    )
    assert lines[2].startswith(
        "  - column 'zone' has 1 value never seen in training ('Z') at rows 0"
    )
    assert [p.kind for p in caught.value.problems] == ["missing_column", "unseen_category"]
    assert caught.value.http_status == 422


def test_check_frame_passes_options(schema: DataSchema, train: pd.DataFrame) -> None:
    check_frame(train.assign(zone=["Z"] * 4), schema, unseen_categories="ignore")
    with pytest.raises(DataValidationError, match=r"\(1 problem\)"):
        check_frame(train.assign(zone=["Z"] * 4), schema)


def test_ames_schema_round_trip() -> None:
    ames = pd.read_csv(AMES_CSV)
    schema = infer_schema(ames, categorical=["MS.SubClass"])
    lot_area = schema.get("Lot.Area")
    assert lot_area is not None and lot_area.kind == "integer" and lot_area.min == 1300.0
    assert validate_frame(ames, schema) == []
    served = ames.head(5).astype({"MS.SubClass": float})
    served.loc[2, "MS.SubClass"] = 999
    assert kinds(validate_frame(served, schema)) == [("MS.SubClass", "unseen_category")]
    assert DataSchema.model_validate_json(schema.model_dump_json()) == schema


# -- target -----------------------------------------------------------------------------


def test_good_targets() -> None:
    check_target(pd.DataFrame({"y": [1.5, 2.0, 3.0]}), "y", "regression")
    check_target(pd.DataFrame({"y": pd.Series([1, 2], dtype=object)}), "y", "regression")
    check_target(pd.DataFrame({"y": ["a", "b", "a", "b"]}), "y", "binary")
    check_target(pd.DataFrame({"y": [0, 1, 2, 0, 1, 2]}), "y", "multiclass")


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        ([1.0, None, 3.0], "regression", r"'y' has 1 missing value \(rows 1\); drop those rows"),
        (
            ["a", "b", "c"],
            "regression",
            r"must be numeric for task regression, found values like 'a'",
        ),
        ([True, False, True], "regression", "must be numeric"),
        (
            ["a", "b", "c", "a", "b", "c"],
            "binary",
            r"has 3 classes \('a', 'b', 'c'\).*use task: multiclass",
        ),
        (["a", "a"], "binary", r"has 1 classes \('a'\), a binary task needs exactly 2"),
        (["a", "b", "a", "b"], "multiclass", r"has 2 classes.*at least 3; use task: binary"),
        (["a", "b", "a", "b", "c"], "multiclass", r"classes with a single row \('c'\)"),
        ([0, 1, 0, 1, 0, 2], "multiclass", r"single row \('2'\).*drop or merge"),
    ],
)
def test_bad_targets(values: list[object], task: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_target(pd.DataFrame({"y": values}), "y", task)  # type: ignore[arg-type]


def test_missing_target_suggests_names() -> None:
    frame = pd.DataFrame({"SalePrice": [1.0], "x": [2]})
    with pytest.raises(
        DataError, match=r"'saleprice' is not in the data; did you mean 'SalePrice'"
    ):
        check_target(frame, "saleprice", "regression")
