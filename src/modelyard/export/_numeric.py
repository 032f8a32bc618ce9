"""ONNX converters replacing skl2onnx's for numeric transforms: binning and power.

skl2onnx's ``KBinsDiscretizer`` converter compares in float32 and has no one-hot output,
and its ``PowerTransformer`` converter computes in float32 and maps 0 to NaN. These
work in double: binning is exact, power transforms are within a few ulps (``log1p`` and
``expm1`` are computed with the classic accurate formulas, as SciPy does with its own).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.export._common import (
    add_const,
    add_node,
    column_count,
    gather_column,
)
from modelyard.export._encoders import concat_to_output, double_input, output, unsupported

__all__ = ["register_numeric_converters"]


# -- KBinsDiscretizer ---------------------------------------------------------------


def _bins_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    model = operator.raw_operator
    onehot = model.encode != "ordinal"
    width = int(np.sum(model.n_bins_)) if onehot else len(model.n_bins_)
    operator.outputs[0].type = DoubleTensorType([None, width])


def _bins_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    if model.encode not in ("ordinal", "onehot-dense"):
        raise unsupported(operator, f"encode={model.encode!r}")
    values = double_input(scope, operator, container)
    width = column_count(operator)
    axis = add_const(scope, container, [1], np.int64)
    pieces = []
    for column, edges in enumerate(model.bin_edges_):
        value = gather_column(scope, container, values, column, width)
        inner = np.asarray(edges[1:-1], dtype=np.float64)
        if len(inner):  # np.searchsorted(inner, x, side="right"): edges <= x
            below = add_node(
                scope, container, "LessOrEqual", [add_const(scope, container, [inner]), value]
            )
            counted = add_node(scope, container, "Cast", [below], to=TensorProto.INT64)
            index = add_node(scope, container, "ReduceSum", [counted, axis], keepdims=1)
        else:
            index = add_node(
                scope,
                container,
                "Mul",
                [
                    add_node(scope, container, "Cast", [value], to=TensorProto.INT64),
                    add_const(scope, container, 0, np.int64),
                ],
            )
        if model.encode == "ordinal":
            pieces.append(add_node(scope, container, "Cast", [index], to=TensorProto.DOUBLE))
            continue
        bins = add_const(scope, container, [np.arange(int(model.n_bins_[column]))], np.int64)
        hot = add_node(scope, container, "Equal", [index, bins])
        pieces.append(add_node(scope, container, "Cast", [hot], to=TensorProto.DOUBLE))
    concat_to_output(scope, container, pieces, operator)


# -- PowerTransformer ---------------------------------------------------------------


def _power_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    operator.outputs[0].type = DoubleTensorType([None, column_count(operator)])


def _log1p(scope: Any, container: Any, value: str) -> str:
    """``log1p`` to a few ulps: ``log(u) * x / (u - 1)`` with ``u = 1 + x`` (Goldberg)."""
    one = add_const(scope, container, 1.0)
    shifted = add_node(scope, container, "Add", [value, one])
    step = add_node(scope, container, "Sub", [shifted, one])
    exact = add_node(scope, container, "Equal", [step, add_const(scope, container, 0.0)])
    ratio = add_node(
        scope,
        container,
        "Div",
        [
            add_node(
                scope, container, "Mul", [add_node(scope, container, "Log", [shifted]), value]
            ),
            add_node(scope, container, "Where", [exact, one, step]),
        ],
    )
    return add_node(scope, container, "Where", [exact, value, ratio])


def _expm1(scope: Any, container: Any, value: str) -> str:
    """``expm1`` to a few ulps: ``(u - 1) * y / log(u)`` with ``u = exp(y)`` (Kahan)."""
    one = add_const(scope, container, 1.0)
    grown = add_node(scope, container, "Exp", [value])
    step = add_node(scope, container, "Sub", [grown, one])
    exact = add_node(scope, container, "Equal", [step, add_const(scope, container, 0.0)])
    log = add_node(scope, container, "Log", [grown])
    tiny = add_node(scope, container, "Equal", [log, add_const(scope, container, 0.0)])
    ratio = add_node(
        scope,
        container,
        "Div",
        [
            add_node(scope, container, "Mul", [step, value]),
            add_node(scope, container, "Where", [tiny, one, log]),
        ],
    )
    # exp(y) = inf or 0 at the ends: use exp(y) - 1 itself there.
    finite = add_node(
        scope,
        container,
        "And",
        [
            add_node(scope, container, "Not", [add_node(scope, container, "IsInf", [grown])]),
            add_node(scope, container, "Greater", [grown, add_const(scope, container, 0.0)]),
        ],
    )
    general = add_node(scope, container, "Where", [finite, ratio, step])
    return add_node(scope, container, "Where", [exact, value, general])


def _power_column(scope: Any, container: Any, value: str, method: str, lmbda: float) -> str:
    """scipy's ``yeojohnson(x, lmbda)`` / ``boxcox(x, lmbda)`` on one ``[N, 1]`` column."""

    def const(number: float) -> str:
        return add_const(scope, container, number)

    def op(op_type: str, *inputs: str) -> str:
        return add_node(scope, container, op_type, list(inputs))

    eps = float(np.finfo(np.float64).eps)
    if method == "box-cox":
        logged = op("Log", value)
        if abs(lmbda) < 1e-19:
            return logged
        return op("Div", _expm1(scope, container, op("Mul", logged, const(lmbda))), const(lmbda))
    positive = op("GreaterOrEqual", value, const(0.0))
    up = _log1p(scope, container, value)
    if abs(lmbda) >= eps:
        up = op("Div", _expm1(scope, container, op("Mul", up, const(lmbda))), const(lmbda))
    down = _log1p(scope, container, op("Neg", value))
    if abs(lmbda - 2) > eps:
        down = op(
            "Div", _expm1(scope, container, op("Mul", down, const(2 - lmbda))), const(2 - lmbda)
        )
    return op("Where", positive, up, op("Neg", down))


def _power_converter(scope: Any, operator: Any, container: Any) -> None:
    model = operator.raw_operator
    values = double_input(scope, operator, container)
    width = column_count(operator)
    columns = [
        _power_column(
            scope,
            container,
            gather_column(scope, container, values, index, width),
            model.method,
            float(lmbda),
        )
        for index, lmbda in enumerate(model.lambdas_)
    ]
    merged = (
        columns[0] if len(columns) == 1 else add_node(scope, container, "Concat", columns, axis=1)
    )
    scaler = getattr(model, "_scaler", None)
    if model.standardize and scaler is not None:
        # As StandardScaler.transform: X -= mean_; X /= scale_ (a division, not a product).
        if scaler.with_mean:
            merged = add_node(
                scope, container, "Sub", [merged, add_const(scope, container, [scaler.mean_])]
            )
        if scaler.with_std:
            merged = add_node(
                scope, container, "Div", [merged, add_const(scope, container, [scaler.scale_])]
            )
    output(scope, container, "Identity", [merged], operator)


# -- registration -------------------------------------------------------------------


def register_numeric_converters() -> None:
    """Register these converters with skl2onnx, replacing its own (idempotent)."""
    from skl2onnx import update_registered_converter
    from sklearn.preprocessing import KBinsDiscretizer, PowerTransformer

    update_registered_converter(
        KBinsDiscretizer, "SklearnKBinsDiscretizer", _bins_shape, _bins_converter
    )
    update_registered_converter(
        PowerTransformer, "SklearnPowerTransformer", _power_shape, _power_converter
    )
