"""ONNX converter for :class:`~modelyard.features.transformers.DateParts`.

Dates arrive as int64 nanoseconds since 1970 (NumPy's NaT, the smallest int64, when
missing); the parts are computed in integer arithmetic, so they are exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.export._common import (
    NAT,
    add_const,
    add_node,
    column_count,
    concat_inputs,
    gather_column,
)
from modelyard.export._steps import double_shape
from modelyard.features.transformers import DateParts

__all__ = ["register_date_converter"]

_NS_PER_DAY = 86_400_000_000_000
_NS_PER_HOUR = 3_600_000_000_000


# -- DateParts ----------------------------------------------------------------------


def _floor_div(scope: Any, container: Any, value: str, divisor: int) -> str:
    """Floor division of int64 (ONNX ``Div`` truncates toward zero; ``Mod`` floors)."""
    constant = add_const(scope, container, divisor, np.int64)
    remainder = add_node(scope, container, "Mod", [value, constant], fmod=0)
    return add_node(
        scope, container, "Div", [add_node(scope, container, "Sub", [value, remainder]), constant]
    )


def _date_parts(scope: Any, container: Any, ticks: str, parts: list[str]) -> list[str]:
    """``[N, 1]`` int64 nanoseconds -> one ``[N, 1]`` int64 tensor per part.

    Days to civil dates by H. Hinnant's ``civil_from_days`` (proleptic Gregorian, the
    calendar of NumPy and pandas), in integer arithmetic so every part is exact.
    """
    from onnx import TensorProto

    def const(value: int) -> str:
        return add_const(scope, container, value, np.int64)

    def op(op_type: str, *inputs: str) -> str:
        return add_node(scope, container, op_type, list(inputs))

    days = _floor_div(scope, container, ticks, _NS_PER_DAY)
    shifted = op("Add", days, const(719_468))
    era = _floor_div(scope, container, shifted, 146_097)
    day_of_era = op("Sub", shifted, op("Mul", era, const(146_097)))  # [0, 146096]
    year_of_era = op(
        "Div",
        op(
            "Sub",
            op(
                "Add",
                op("Sub", day_of_era, op("Div", day_of_era, const(1460))),
                op("Div", day_of_era, const(36_524)),
            ),
            op("Div", day_of_era, const(146_096)),
        ),
        const(365),
    )
    day_of_year_mar = op(
        "Sub",
        day_of_era,
        op(
            "Sub",
            op("Add", op("Mul", year_of_era, const(365)), op("Div", year_of_era, const(4))),
            op("Div", year_of_era, const(100)),
        ),
    )
    month_mar = op("Div", op("Add", op("Mul", day_of_year_mar, const(5)), const(2)), const(153))
    day = op(
        "Add",
        op(
            "Sub",
            day_of_year_mar,
            op("Div", op("Add", op("Mul", month_mar, const(153)), const(2)), const(5)),
        ),
        const(1),
    )
    before_march = op("Less", month_mar, const(10))
    month = op(
        "Where", before_march, op("Add", month_mar, const(3)), op("Sub", month_mar, const(9))
    )
    january_or_february = op("LessOrEqual", month, const(2))
    year = op(
        "Add",
        op("Add", year_of_era, op("Mul", era, const(400))),
        add_node(scope, container, "Cast", [january_or_february], to=TensorProto.INT64),
    )
    results: dict[str, str] = {"year": year, "month": month, "day": day}
    if "dayofweek" in parts:  # 1970-01-01 was a Thursday (Monday = 0)
        results["dayofweek"] = add_node(
            scope, container, "Mod", [op("Add", days, const(3)), const(7)], fmod=0
        )
    if "dayofyear" in parts:  # March-based day -> 1-based day of the civil year
        after_february = op(
            "Add", op("Add", day_of_year_mar, const(59)), _leap_year(scope, container, year)
        )
        results["dayofyear"] = op(
            "Add",
            op(
                "Where", january_or_february, op("Sub", day_of_year_mar, const(306)), after_february
            ),
            const(1),
        )
    if "quarter" in parts:
        results["quarter"] = op("Add", op("Div", op("Sub", month, const(1)), const(3)), const(1))
    if "hour" in parts:
        hours = _floor_div(scope, container, ticks, _NS_PER_HOUR)
        results["hour"] = add_node(scope, container, "Mod", [hours, const(24)], fmod=0)
    return [results[part] for part in parts]


def _leap_year(scope: Any, container: Any, year: str) -> str:
    """1 where ``year`` is a leap year, else 0 (int64)."""
    from onnx import TensorProto

    def divisible(by: int) -> str:
        remainder = add_node(
            scope, container, "Mod", [year, add_const(scope, container, by, np.int64)], fmod=0
        )
        return add_node(
            scope, container, "Equal", [remainder, add_const(scope, container, 0, np.int64)]
        )

    leap = add_node(
        scope,
        container,
        "Or",
        [
            add_node(
                scope,
                container,
                "And",
                [divisible(4), add_node(scope, container, "Not", [divisible(100)])],
            ),
            divisible(400),
        ],
    )
    return add_node(scope, container, "Cast", [leap], to=TensorProto.INT64)


def _date_parts_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    merged = concat_inputs(scope, operator, container)
    width = column_count(operator)
    nan = add_const(scope, container, np.nan)
    nat = add_const(scope, container, NAT, np.int64)
    pieces: list[str] = []
    for index in range(width):
        ticks = gather_column(scope, container, merged, index, width)
        missing = add_node(scope, container, "Equal", [ticks, nat])
        for part in _date_parts(scope, container, ticks, list(model.parts)):
            as_double = add_node(scope, container, "Cast", [part], to=TensorProto.DOUBLE)
            pieces.append(add_node(scope, container, "Where", [missing, nan, as_double]))
    container.add_node(
        "Concat" if len(pieces) > 1 else "Identity",
        pieces,
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("DateParts"),
        **({"axis": 1} if len(pieces) > 1 else {}),
    )


# -- registration -------------------------------------------------------------------


def register_date_converter() -> None:
    """Register the DateParts converter with skl2onnx (idempotent)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(
        DateParts,
        "ModelyardDateParts",
        double_shape(lambda operator: column_count(operator) * len(operator.raw_operator.parts)),
        _date_parts_converter,
    )
