"""The columnar CSV front cannot disagree with the row path: the same CSV file, checked
column-wise on Arrow columns (batch) and field by field through the CSV rule and the
JSON front (an online ``text/csv`` request), gives the same values, bit for bit, and the
same problems with the same messages in the same order."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _contract_cases import input_columns
from modelyard.batch.inputs import InputFile, source_of
from modelyard.contract import (
    DerivedRatio,
    InputColumn,
    InputContract,
    Problems,
    check_columnar,
    check_csv_table,
    csv_values,
)
from modelyard.types import ColumnBlocks

#: Fields that sit on a rule's edge: JSON's number grammar, overflow, signed zeros,
#: booleans, dates, long and non-ASCII text, and text CSV must quote.
_EDGES = [
    "",
    "0",
    "-0",
    "-0.0",
    "1",
    "20",
    "20.0",
    "2.5",
    "1e20",
    "1E5",
    "1e+20",
    "-2.5e-400",
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "9007199254740993",
    "+5",
    ".5",
    "5.",
    "NaN",
    "inf",
    "1_000",
    " 5",
    "٣",
    "true",
    "True",
    "FALSE",
    "false",
    "A",
    "B",
    "a, with a comma",
    'say "hi"',
    "two\nlines",
    "é" * 9,
    "x" * 300,
    "2024-05-31",
    "2024-05-31T12:00:00+02:00",
    "9999-01-01",
    "1677-01-01",
]
_FIELDS = (
    st.sampled_from(_EDGES)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.integers(-(2**70), 2**70).map(str)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=4)
)
_KNOWN = ["A", "B", "20", "1e+20", "2.5", "True", "False", "a, with a comma", "é" * 9]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[InputContract, list[list[str]]]:
    width = draw(st.integers(1, 4))
    kinds = ("numeric", "numeric", "categorical", "categorical", "datetime")
    known = st.sampled_from(_KNOWN)
    columns = tuple(draw(input_columns(f"c{i}", known, kinds)) for i in range(width))
    numeric = [column.name for column in columns if column.kind == "numeric"]
    ratios: tuple[DerivedRatio, ...] = ()
    if len(numeric) >= 2 and draw(st.booleans()):
        ratios = (DerivedRatio("ratio", numeric[0], numeric[1]),)
    contract = InputContract(
        columns,
        reject_unseen=draw(st.booleans()),
        ranges=draw(st.sampled_from(["ignore", "warn", "refuse"])),
        ratios=ratios,
    )
    # Up to 80 rows: both sides of the row path's switch to whole-column checks (32).
    rows = draw(st.lists(st.lists(_FIELDS, min_size=width, max_size=width), max_size=80))
    return contract, rows


def _read(folder: Path, contract: InputContract, rows: list[list[str]]) -> Any:
    """The file as batch reads it: written by Python's csv module, read by the
    streaming reader (every field as text)."""
    path = folder / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(contract.names)
        writer.writerows(rows)
    source = InputFile(source_of(path), chunk_rows=1_000)
    return next(source.chunks(), None)


def _listed(problems: Problems) -> list[tuple[int | None, str | None, str, str]]:
    return [(p.row, p.column, p.kind, p.message) for p in problems.listed]


def _same_blocks(left: ColumnBlocks, right: ColumnBlocks) -> None:
    assert left.rows == right.rows
    for ours, theirs in zip(left.blocks, right.blocks, strict=True):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        if ours.dtype.kind == "f":  # NaN where the other has NaN, and signed zeros alike
            assert np.array_equal(np.isnan(ours), np.isnan(theirs))
            assert np.array_equal(np.signbit(ours), np.signbit(theirs))
            assert np.array_equal(ours, theirs, equal_nan=True)
        else:
            assert ours.tolist() == theirs.tolist()


def _both(chunk: Any, contract: InputContract) -> tuple[Any, ...]:
    columnar = Problems(limit=None)
    blocks = check_csv_table(chunk.table, contract, columnar)
    by_row = Problems(limit=None)
    values = {
        column.name: csv_values(column, chunk.values(column.name)) for column in contract.columns
    }
    expected = check_columnar(values, contract, by_row)
    return blocks, columnar, expected, by_row


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=_cases())
def test_the_columnar_csv_front_agrees_with_the_row_path(
    case: tuple[InputContract, list[list[str]]], tmp_path: Path
) -> None:
    contract, rows = case
    chunk = _read(tmp_path, contract, rows)
    if chunk is None:  # a header alone: no chunk, in either path
        assert not rows
        return
    blocks, columnar, expected, by_row = _both(chunk, contract)
    assert blocks is not None
    _same_blocks(blocks, expected)
    assert _listed(columnar) == _listed(by_row)
    assert columnar.total == by_row.total


@pytest.mark.parametrize("rows", [5, 500])
def test_plain_files_with_odd_fields_agree(tmp_path: Path, rows: int) -> None:
    """Mostly plain values (the fast paths of both) with a few odd ones scattered."""
    contract = InputContract(
        (
            InputColumn("size", "numeric", nullable=False, recorded="float", min=0, max=500),
            InputColumn("rooms", "numeric", recorded="integer", integer=True),
            InputColumn("town", "categorical", nullable=False, categories=frozenset("AB")),
            InputColumn(
                "zone", "categorical", categories=frozenset({"20", "1e+20"}), recorded="float"
            ),
            InputColumn("sold", "datetime", recorded="string"),
        ),
        reject_unseen=True,
        ranges="refuse",
    )
    rng = np.random.default_rng(rows)
    table = [
        [f"{rng.uniform(0, 500):.3f}", str(rng.integers(1, 9)), "AB"[i % 2], "20.0", "2024-05-31"]
        for i in range(rows)
    ]
    odd = ["abc", "", "1e400", "C", "1e20", "true", "-0", "501", '"quoted"', "2024-13-01"]
    for index, field in enumerate(odd):
        table[int(rng.integers(0, rows))][index % 5] = field
    chunk = _read(tmp_path, contract, table)
    blocks, columnar, expected, by_row = _both(chunk, contract)
    assert blocks is not None and columnar.total > 0
    _same_blocks(blocks, expected)
    assert _listed(columnar) == _listed(by_row)


def test_a_missing_column_is_reported_not_decoded() -> None:
    contract = InputContract((InputColumn("a", "numeric"), InputColumn("b", "categorical")))
    problems = Problems()
    table = pa.table({"a": pa.array(["1", "2"])})
    assert check_csv_table(table, contract, problems) is None
    assert [(p.row, p.column, p.kind) for p in problems.listed] == [(None, "b", "missing_column")]


def test_problems_can_be_listed_beyond_50() -> None:
    contract = InputContract((InputColumn("a", "numeric", nullable=False),))
    table = pa.table({"a": pa.array(["x"] * 120)})
    limited, every = Problems(), Problems(limit=None)
    check_csv_table(table, contract, limited)
    check_csv_table(table, contract, every)
    assert (len(limited.listed), limited.total) == (50, 120)
    assert (len(every.listed), every.total) == (120, 120)
    assert sorted(every.by_row()) == list(range(120))
