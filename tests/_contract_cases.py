"""A contract and a row shared by the contract's and the protocols' decoding tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from modelyard.contract import InputColumn, InputContract, RequestValidationError
from modelyard.registry.records import ModelVersion
from modelyard.types import Columns

SPEC = InputContract(
    (
        InputColumn("size", "numeric", nullable=False, recorded="float"),
        InputColumn("rooms", "numeric", nullable=True, integer=True, recorded="integer"),
        InputColumn("town", "categorical", nullable=False, categories=frozenset({"alpha", "beta"})),
        InputColumn(
            "zone",
            "categorical",
            nullable=True,
            categories=frozenset({"20", "60", "2.5"}),
            recorded="integer",
        ),
        InputColumn(
            "garage",
            "categorical",
            nullable=True,
            categories=frozenset({"False", "True"}),
            recorded="boolean",
        ),
        InputColumn("sold", "datetime", nullable=True, recorded="string"),
    ),
    reject_unseen=True,
    max_rows=300,
)
ROW = {
    "size": 120.5,
    "rooms": 3,
    "town": "alpha",
    "zone": 20,
    "garage": True,
    "sold": "2024-05-31T12:00:00+02:00",
}


def _problems(call: Any, *args: Any) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(RequestValidationError) as caught:
        call(*args)
    return [(p.row, p.column, p.kind) for p in caught.value.problems]


def _same(left: Columns, right: Columns) -> None:
    assert list(left) == list(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        np.testing.assert_array_equal(left[name], right[name])


def make_version(lineage: dict[str, Any], spec: dict[str, Any]) -> ModelVersion:
    """A registered version record holding ``lineage`` and ``spec`` (nothing stored)."""
    return ModelVersion(
        name="m",
        version=1,
        created_at=datetime.now(UTC),
        created_by="test",
        gates_passed=True,
        spec=spec,
        lineage=lineage,
        metrics={},
        report={},
        description="",
        artifacts={},
        aliases=[],
    )


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_NEAR_ROW = st.fixed_dictionaries({}, optional={name: _JSON for name in SPEC.names})
#: Anything JSON can hold, and rows that nearly fit SPEC.
ANY_PAYLOAD = _JSON | st.lists(_NEAR_ROW, max_size=5) | _NEAR_ROW


def columns_or_problems(decode: Callable[[Any, InputContract], Any], payload: Any) -> None:
    """``decode`` gives SPEC's columns or a RequestValidationError, never anything else."""
    try:
        columns, rows = decode(payload, SPEC)
    except RequestValidationError as error:
        assert error.problems and str(error).startswith("the request does not fit")
    else:
        assert list(columns) == SPEC.names
        assert all(len(values) == rows for values in columns.values())


@st.composite
def input_columns(
    draw: st.DrawFn,
    name: str,
    categories: st.SearchStrategy[str],
    kinds: tuple[str, ...] = ("numeric", "categorical", "datetime"),
) -> InputColumn:
    """An input column of any kind, recorded kind, nullability, known categories (drawn
    from ``categories``), range and text cap."""
    kind = draw(st.sampled_from(kinds))
    recorded = draw(st.sampled_from([None, "integer", "float", "boolean", "string"]))
    known = None
    if kind == "categorical" and draw(st.booleans()):
        known = frozenset(draw(st.lists(categories, max_size=4)))
    low = draw(st.none() | st.floats(-100, 100))
    return InputColumn(
        name,
        kind,  # type: ignore[arg-type]
        nullable=draw(st.booleans()),
        categories=known,
        recorded=recorded,
        min=low,
        max=None if low is None else low + draw(st.floats(0, 50)),
        max_length=draw(st.sampled_from([4, 256])),
    )
