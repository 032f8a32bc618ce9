"""ONNX converters for modelyard's own transformers (see :mod:`modelyard.features.transformers`).

- :class:`FrameCoercer` declares one graph variable per column, named like the column, so
  the ``ColumnTransformer`` after it selects columns by name as it does in scikit-learn.
- :class:`Ratio` and :class:`Cross` pass every column on and add their derived one.
- :class:`Log1pTransformer` works on a tensor, like built-ins (:class:`DateParts`: see
  :mod:`modelyard.export._dates`).

Each converter reproduces the transformer's ``transform`` in double precision with
operations that are exact (``Div``, ``Where``) or within one ulp (``Log``) of NumPy's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.contract.text import CATEGORY_INT_LIMIT
from modelyard.export._common import (
    MISSING_CATEGORY,
    ExportError,
    add_const,
    add_node,
    column_count,
    concat_inputs,
)
from modelyard.features.transformers import (
    Cross,
    FrameCoercer,
    Log1pTransformer,
    Ratio,
)

__all__ = ["double_shape", "register_step_converters"]

_COERCER = "ModelyardFrameCoercer"
_RATIO = "ModelyardRatio"
_CROSS = "ModelyardCross"
#: Integral floats below this are written as integers: the contract's category-text rule.
_EXACT_INT = CATEGORY_INT_LIMIT


def _types() -> dict[str, Any]:
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

    return {
        "numeric": DoubleTensorType,
        "categorical": StringTensorType,
        "datetime": Int64TensorType,
    }


def _by_name(inputs: list[Any], owner: str, columns: list[str]) -> list[Any]:
    found = {variable.raw_name: variable for variable in inputs}
    missing = [column for column in columns if column not in found]
    if missing:
        raise ExportError(
            f"{owner}: no graph variable for column(s) {missing}; the variables are {sorted(found)}"
        )
    return [found[column] for column in columns]


# -- FrameCoercer -------------------------------------------------------------------


def _coercer_parser(scope: Any, model: Any, inputs: list[Any], custom_parsers: Any = None) -> Any:
    operator = scope.declare_local_operator(_COERCER, model)
    operator.inputs = _by_name(inputs, "FrameCoercer", list(model.feature_order_))
    types = _types()
    for column in model.feature_order_:
        kind = model.column_kinds_[column]
        operator.outputs.append(scope.declare_local_variable(column, types[kind]([None, 1])))
    return operator.outputs


def _coercer_shape(operator: Any) -> None:
    for source, target in zip(operator.inputs, operator.outputs, strict=True):
        target.type = source.type.__class__([None, 1])


def _coercer_converter(scope: Any, operator: Any, container: Any) -> None:
    # Columns arrive already typed (that is the feed convention): pass them on.
    for source, target in zip(operator.inputs, operator.outputs, strict=True):
        container.add_node(
            "Identity",
            [source.full_name],
            [target.full_name],
            name=scope.get_unique_operator_name("Coerce"),
        )


# -- Ratio and Cross ----------------------------------------------------------------


def _append_parser(alias: str, kind: str) -> Any:
    def parser(scope: Any, model: Any, inputs: list[Any], custom_parsers: Any = None) -> Any:
        operator = scope.declare_local_operator(alias, model)
        operator.inputs = _by_name(inputs, type(model).__name__, model._inputs())
        output = scope.declare_local_variable(model.name, _types()[kind]([None, 1]))
        operator.outputs.append(output)
        return [*inputs, output]

    return parser


def _append_shape(kind: str) -> Any:
    def shape(operator: Any) -> None:
        operator.outputs[0].type = _types()[kind]([None, 1])

    return shape


def _ratio_converter(scope: Any, operator: Any, container: Any) -> None:
    top, bottom = (variable.full_name for variable in operator.inputs)
    zero = add_const(scope, container, 0.0)
    nan = add_const(scope, container, np.nan)
    nonzero = add_node(
        scope, container, "Not", [add_node(scope, container, "Equal", [bottom, zero])]
    )
    defined = add_node(
        scope,
        container,
        "Not",
        [
            add_node(
                scope,
                container,
                "Or",
                [
                    add_node(scope, container, "IsNaN", [top]),
                    add_node(scope, container, "IsNaN", [bottom]),
                ],
            )
        ],
    )
    usable = add_node(scope, container, "And", [nonzero, defined])
    quotient = add_node(scope, container, "Div", [top, bottom])
    container.add_node(
        "Where",
        [usable, quotient, nan],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


def _number_text(scope: Any, container: Any, value: str) -> tuple[str, str]:
    """A double column as text like ``category_values`` (and whether it is missing).

    Integral values (the common case: codes, years, counts) are exact; other values are
    written with 8 significant digits, which matches only when that is their shortest form.
    """
    from onnx import TensorProto

    missing = add_node(scope, container, "IsNaN", [value])
    floor = add_node(scope, container, "Floor", [value])
    small = add_node(
        scope,
        container,
        "Less",
        [add_node(scope, container, "Abs", [value]), add_const(scope, container, _EXACT_INT)],
    )
    integral = add_node(
        scope, container, "And", [add_node(scope, container, "Equal", [value, floor]), small]
    )
    safe = add_node(scope, container, "Where", [integral, value, add_const(scope, container, 0.0)])
    as_int = add_node(scope, container, "Cast", [safe], to=TensorProto.INT64)
    int_text = add_node(scope, container, "Cast", [as_int], to=TensorProto.STRING)
    float_text = add_node(scope, container, "Cast", [value], to=TensorProto.STRING)
    return add_node(scope, container, "Where", [integral, int_text, float_text]), missing


def _cross_converter(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    sentinel = add_const(scope, container, [MISSING_CATEGORY], object)
    separator = add_const(scope, container, ["|"], object)
    joined = ""
    any_missing = ""
    for variable in operator.inputs:
        if isinstance(variable.type, StringTensorType):
            text = variable.full_name
            missing = add_node(scope, container, "Equal", [text, sentinel])
        elif isinstance(variable.type, DoubleTensorType):
            text, missing = _number_text(scope, container, variable.full_name)
        else:
            raise ExportError(
                f"Cross {operator.raw_operator.name!r}: column {variable.raw_name!r} has "
                f"type {variable.type}; only categorical and numeric columns convert"
            )
        if not joined:
            joined, any_missing = text, missing
            continue
        with_separator = add_node(scope, container, "StringConcat", [joined, separator])
        joined = add_node(scope, container, "StringConcat", [with_separator, text])
        any_missing = add_node(scope, container, "Or", [any_missing, missing])
    container.add_node(
        "Where",
        [any_missing, sentinel, joined],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


# -- Log1pTransformer ---------------------------------------------------------------


def double_shape(width: Any) -> Any:
    def shape(operator: Any) -> None:
        from skl2onnx.common.data_types import DoubleTensorType

        operator.outputs[0].type = DoubleTensorType([None, width(operator)])

    return shape


def _log1p_converter(scope: Any, operator: Any, container: Any) -> None:
    values = _as_double(scope, container, concat_inputs(scope, operator, container), operator)
    shifted = add_node(
        scope, container, "Add", [values, add_const(scope, container, operator.raw_operator.offset)]
    )
    positive = add_node(scope, container, "Greater", [shifted, add_const(scope, container, 0.0)])
    logged = add_node(scope, container, "Log", [shifted])
    container.add_node(
        "Where",
        [positive, logged, add_const(scope, container, np.nan)],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


def _as_double(scope: Any, container: Any, tensor: str, operator: Any) -> str:
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return tensor
    return add_node(scope, container, "Cast", [tensor], to=TensorProto.DOUBLE)


# -- registration -------------------------------------------------------------------


def register_step_converters() -> None:
    """Register the converters of modelyard's transformers with skl2onnx (idempotent)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(
        FrameCoercer, _COERCER, _coercer_shape, _coercer_converter, parser=_coercer_parser
    )
    update_registered_converter(
        Ratio,
        _RATIO,
        _append_shape("numeric"),
        _ratio_converter,
        parser=_append_parser(_RATIO, "numeric"),
    )
    update_registered_converter(
        Cross,
        _CROSS,
        _append_shape("categorical"),
        _cross_converter,
        parser=_append_parser(_CROSS, "categorical"),
    )
    update_registered_converter(
        Log1pTransformer,
        "ModelyardLog1p",
        double_shape(column_count),
        _log1p_converter,
    )
