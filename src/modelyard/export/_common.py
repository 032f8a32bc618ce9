"""What the ONNX export modules share: the error type, the feed conventions, graph helpers.

Every graph modelyard writes takes one input per raw column: numbers as ``double[N, 1]``,
categories as ``string[N, 1]`` (a missing category is :data:`MISSING_CATEGORY`), dates
as ``int64[N, 1]`` nanoseconds since 1970 (missing: the smallest int64, NumPy's NaT).
The helpers below add nodes to a skl2onnx container; skl2onnx has no type hints, so
its objects are typed ``Any``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.errors import MissingExtraError, ModelyardError

__all__ = [
    "ML_DOMAIN",
    "MISSING_CATEGORY",
    "NAT",
    "TEXT_IMPUTATION_TAG",
    "ExportError",
    "add_const",
    "add_node",
    "column_count",
    "concat_inputs",
    "gather_column",
    "require",
]

ML_DOMAIN = "ai.onnx.ml"
#: What a missing category is fed as. Not "": an empty string can be a real category.
MISSING_CATEGORY = "\x00modelyard:missing"
#: What the name of the node filling missing categories starts with (see ``_fold``).
TEXT_IMPUTATION_TAG = "ModelyardImputeText"
#: The int64 a missing date is fed as (NumPy's NaT).
NAT = int(np.iinfo(np.int64).min)


class ExportError(ModelyardError):
    """A fitted pipeline cannot be converted to ONNX; the message names the step.

    The version is served by its scikit-learn pipeline instead.
    """


def add_node(
    scope: Any, container: Any, op_type: str, inputs: list[str], *, tag: str = "", **attrs: Any
) -> str:
    """Add one node with a fresh output name; return that name.

    ``tag`` starts the node's name instead of ``op_type``, for a pass that looks for it.
    """
    output = scope.get_unique_variable_name(op_type.lower())
    name = scope.get_unique_operator_name(tag or op_type)
    container.add_node(op_type, inputs, [output], name=name, **attrs)
    return str(output)


def add_const(scope: Any, container: Any, value: Any, dtype: Any = np.float64) -> str:
    """Add an initializer holding ``value`` (a scalar or an array); return its name.

    ``dtype`` ``object`` makes a string tensor.
    """
    from onnx import TensorProto, helper

    array = np.asarray(value, dtype=dtype)
    name = scope.get_unique_variable_name("const")
    if array.dtype == object:
        onnx_type = TensorProto.STRING
        content: Any = [str(item).encode() for item in array.ravel()]
    elif array.dtype == np.bool_:
        onnx_type = TensorProto.BOOL
        content = array.ravel().astype(np.int32).tolist()
    else:
        onnx_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        content = array.ravel().tolist()
    container.add_initializer(name, onnx_type, list(array.shape), content)
    return str(name)


def column_count(operator: Any) -> int:
    """How many columns the operator's inputs hold together."""
    total = 0
    for variable in operator.inputs:
        width = variable.type.shape[1] if len(variable.type.shape) > 1 else 1
        if width is None:
            raise ExportError(
                f"{type(operator.raw_operator).__name__}: the number of input columns is "
                "unknown at conversion time"
            )
        total += int(width)
    return total


def concat_inputs(scope: Any, operator: Any, container: Any) -> str:
    """The operator's inputs as one ``[N, k]`` tensor (they share one element type)."""
    names = [variable.full_name for variable in operator.inputs]
    if len(names) == 1:
        return str(names[0])
    return add_node(scope, container, "Concat", names, axis=1)


def gather_column(scope: Any, container: Any, tensor: str, index: int, width: int) -> str:
    """Column ``index`` of an ``[N, width]`` tensor, as ``[N, 1]``."""
    if width == 1:
        return tensor
    indices = add_const(scope, container, [index], np.int64)
    return add_node(scope, container, "Gather", [tensor, indices], axis=1)


def require(module: str) -> Any:
    """Import an ONNX library, or say which extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed; ONNX export and serving need it: run "
            "pip install 'modelyard[onnx]'"
        ) from exc
