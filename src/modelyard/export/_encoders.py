"""ONNX converters replacing skl2onnx's for imputing and encoding.

skl2onnx's own converters fall short here: ``SimpleImputer`` refuses string columns,
``OneHotEncoder`` ignores ``min_frequency``/``max_categories`` and fails on unknown
categories at run time, ``OrdinalEncoder`` ignores infrequent categories and
``unknown_value``. These converters work in double precision. The encoders learn their
mapping by calling the fitted encoder's own ``transform`` on each category (plus a
missing and an unseen value), so they reproduce scikit-learn's rules for rare, missing
and unknown categories exactly.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from modelyard.export._common import (
    MISSING_CATEGORY,
    ML_DOMAIN,
    TEXT_IMPUTATION_TAG,
    ExportError,
    add_const,
    add_node,
    column_count,
    concat_inputs,
    gather_column,
)

__all__ = [
    "concat_to_output",
    "double_input",
    "output",
    "register_encoder_converters",
    "unsupported",
]

_UNSEEN = "\x00modelyard:unseen"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key(value: Any) -> str:
    return MISSING_CATEGORY if _is_missing(value) else str(value)


def output(
    scope: Any, container: Any, op_type: str, inputs: list[str], operator: Any, **attrs: Any
) -> None:
    container.add_node(
        op_type,
        inputs,
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name(op_type),
        **attrs,
    )


def concat_to_output(scope: Any, container: Any, pieces: list[str], operator: Any) -> None:
    if len(pieces) == 1:
        output(scope, container, "Identity", pieces, operator)
    else:
        output(scope, container, "Concat", pieces, operator, axis=1)


def double_input(scope: Any, operator: Any, container: Any) -> str:
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    merged = concat_inputs(scope, operator, container)
    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return merged
    return add_node(scope, container, "Cast", [merged], to=TensorProto.DOUBLE)


def _is_text(operator: Any) -> bool:
    from skl2onnx.common.data_types import StringTensorType

    return isinstance(operator.inputs[0].type, StringTensorType)


def unsupported(operator: Any, what: str) -> ExportError:
    return ExportError(f"{type(operator.raw_operator).__name__}: {what} has no ONNX converter")


# -- SimpleImputer ------------------------------------------------------------------


def _imputer_width(operator: Any) -> int:
    model = operator.raw_operator
    kept = int(np.sum(_kept_columns(model)))
    indicator = getattr(model, "indicator_", None)
    return kept + (len(indicator.features_) if indicator is not None else 0)


def _kept_columns(model: Any) -> np.ndarray[Any, Any]:
    """scikit-learn drops columns whose statistic is missing (all-empty in training)."""
    statistics = model.statistics_
    if getattr(model, "keep_empty_features", False):
        return np.ones(len(statistics), dtype=bool)
    return np.array([not _is_missing(value) for value in statistics.tolist()], dtype=bool)


def _imputer_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    kind = StringTensorType if _is_text(operator) else DoubleTensorType
    operator.outputs[0].type = kind([None, _imputer_width(operator)])


def _imputer_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    if not _is_missing(model.missing_values):
        raise unsupported(operator, f"missing_values={model.missing_values!r}")
    kept = _kept_columns(model)
    statistics = model.statistics_[kept]
    if _is_text(operator):
        values = concat_inputs(scope, operator, container)
        flag = add_node(
            scope,
            container,
            "LabelEncoder",
            [values],
            op_domain=ML_DOMAIN,
            op_version=2,
            keys_strings=[MISSING_CATEGORY],
            values_int64s=[1],
            default_int64=0,
        )
        missing = add_node(scope, container, "Cast", [flag], to=TensorProto.BOOL)
        fill = add_const(scope, container, [[str(value) for value in statistics]], object)
    else:
        values = double_input(scope, operator, container)
        missing = add_node(scope, container, "IsNaN", [values])
        fill = add_const(scope, container, [statistics.astype(np.float64)])
    if not kept.all():
        indices = add_const(scope, container, np.flatnonzero(kept), np.int64)
        values = add_node(scope, container, "Gather", [values, indices], axis=1)
        kept_missing = add_node(scope, container, "Gather", [missing, indices], axis=1)
    else:
        kept_missing = missing
    tag = TEXT_IMPUTATION_TAG if _is_text(operator) else ""
    imputed = add_node(scope, container, "Where", [kept_missing, fill, values], tag=tag)
    indicator = getattr(model, "indicator_", None)
    if indicator is None or len(indicator.features_) == 0:
        output(scope, container, "Identity", [imputed], operator)
        return
    if _is_text(operator):
        raise unsupported(operator, "add_indicator on categorical columns")
    indices = add_const(scope, container, np.asarray(indicator.features_), np.int64)
    flags = add_node(scope, container, "Gather", [missing, indices], axis=1)
    as_double = add_node(scope, container, "Cast", [flags], to=TensorProto.DOUBLE)
    output(scope, container, "Concat", [imputed, as_double], operator, axis=1)


# -- encoders -----------------------------------------------------------------------


def _probe(model: Any, column: int) -> tuple[list[str], np.ndarray[Any, Any]]:
    """Keys (feed strings) of column ``column`` and the encoder's output for each.

    The rows are every category, then a missing value and an unseen one; other columns
    hold their first category. The last row (unseen) gives the default.
    """
    categories = list(model.categories_[column])
    values = list(categories)
    if not any(_is_missing(value) for value in values):
        values.append(np.nan)
    values.append(_UNSEEN)
    probe = np.empty((len(values), len(model.categories_)), dtype=object)
    for index, known in enumerate(model.categories_):
        probe[:, index] = known[0]
    probe[:, column] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unknown categories ... encoded as all zeros"
        try:
            return [_key(value) for value in values[:-1]], _dense(model.transform(probe))
        except ValueError:  # the encoder refuses unseen or missing values: probe row by row
            results = [_transform_row(model, row) for row in probe]
    keys = [_key(value) for value in values[:-1]]
    fallback = next(result for result in results if result is not None)
    rows = [result if result is not None else np.full_like(fallback, np.nan) for result in results]
    return keys, np.vstack(rows)


def _dense(encoded: Any) -> np.ndarray[Any, Any]:
    return np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded, np.float64)


def _transform_row(model: Any, row: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    try:
        encoded: np.ndarray[Any, Any] = _dense(model.transform(row[None, :]))[0]
    except ValueError:
        return None
    return encoded


def _text_columns(scope: Any, operator: Any, container: Any) -> tuple[str, int]:
    if not _is_text(operator):
        raise unsupported(operator, "encoding non-text columns")
    return concat_inputs(scope, operator, container), column_count(operator)


def _onehot_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    width = int(sum(operator.raw_operator._n_features_outs))
    operator.outputs[0].type = DoubleTensorType([None, width])


def _onehot_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    if model.drop is not None:
        raise unsupported(operator, "drop")
    merged, width = _text_columns(scope, operator, container)
    starts = np.cumsum([0, *model._n_features_outs])
    blocks = []
    for column in range(width):
        keys, encoded = _probe(model, column)
        block = encoded[:, starts[column] : starts[column + 1]]
        size = block.shape[1]
        # Position of the 1 in each probe row; ``size`` (no column) for all-zero rows.
        positions = [int(np.flatnonzero(row)[0]) if np.any(row == 1) else size for row in block]
        text = gather_column(scope, container, merged, column, width)
        position = add_node(
            scope,
            container,
            "LabelEncoder",
            [text],
            op_domain=ML_DOMAIN,
            op_version=2,
            keys_strings=keys,
            values_int64s=positions[:-1],
            default_int64=positions[-1],
        )
        hot = add_node(
            scope,
            container,
            "Equal",
            [position, add_const(scope, container, [np.arange(size)], np.int64)],
        )
        blocks.append(add_node(scope, container, "Cast", [hot], to=TensorProto.DOUBLE))
    concat_to_output(scope, container, blocks, operator)


def _ordinal_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    operator.outputs[0].type = DoubleTensorType([None, column_count(operator)])


def _ordinal_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    merged, width = _text_columns(scope, operator, container)
    codes = []
    for column in range(width):
        keys, encoded = _probe(model, column)
        values = encoded[:, column]
        text = gather_column(scope, container, merged, column, width)
        code = add_node(
            scope,
            container,
            "LabelEncoder",
            [text],
            op_domain=ML_DOMAIN,
            op_version=2,
            keys_strings=keys,
            values_floats=[float(value) for value in values[:-1]],
            default_float=float(values[-1]),
        )
        codes.append(add_node(scope, container, "Cast", [code], to=TensorProto.DOUBLE))
    concat_to_output(scope, container, codes, operator)


# -- registration -------------------------------------------------------------------


def register_encoder_converters() -> None:
    """Register these converters with skl2onnx, replacing its own (idempotent)."""
    from skl2onnx import update_registered_converter
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    for model_type, alias, shape, converter in (
        (SimpleImputer, "SklearnSimpleImputer", _imputer_shape, _imputer_converter),
        (OneHotEncoder, "SklearnOneHotEncoder", _onehot_shape, _onehot_converter),
        (OrdinalEncoder, "SklearnOrdinalEncoder", _ordinal_shape, _ordinal_converter),
    ):
        update_registered_converter(model_type, alias, shape, converter, overwrite=True)
