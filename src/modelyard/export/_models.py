"""ONNX converters for estimators: fixes and additions to skl2onnx's registry.

- ``HistGradientBoosting*``: double thresholds (see :func:`_hist_gradient_boosting`),
  and a library bug worked around where present (:func:`bool_flags_bug`).
- LightGBM and XGBoost: onnxmltools' converters, registered with skl2onnx so they
  convert inside a scikit-learn pipeline.
- :class:`~modelyard.models.estimators.LabelEncodedClassifier`: the wrapped classifier's
  graph, then a ``LabelEncoder`` node mapping its codes 0..k-1 back to the labels.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from modelyard.export._common import ML_DOMAIN, ExportError
from modelyard.models.estimators import LabelEncodedClassifier

__all__ = ["RoundToFloat32", "register_model_converters", "round_thresholds"]

logger = logging.getLogger(__name__)

_DECODE = "ModelyardLabelDecode"
_CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "raw_scores": [True, False],
    "output_class_labels": [False, True],
    "nocl": [True, False],
}


def _integer_labels(classes: np.ndarray[Any, Any]) -> bool:
    return bool(classes.dtype.kind in "biu")


# -- HistGradientBoosting -----------------------------------------------------------

_TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")
_AS_TENSOR = ("nodes_values", "target_weights", "class_weights", "base_values")


class RoundToFloat32(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Round the marked feature columns to float32 values (kept as float64).

    Put before a HistGradientBoosting model whose split thresholds on those columns
    were rounded the same way (:func:`round_thresholds`): comparisons on those columns
    then tolerate the last-ulp differences of ONNX Runtime's ``Log`` and ``Exp``, while
    the other columns are compared exactly as scikit-learn does, in double.

    Args:
        columns: one flag per feature column, True to round it.
    """

    def __init__(self, *, columns: list[bool]) -> None:
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> RoundToFloat32:
        """Nothing to learn."""
        return self

    def transform(self, X: Any) -> np.ndarray[Any, Any]:
        """``X`` with the marked columns rounded to float32 values."""
        values = np.array(X, dtype=np.float64)
        mask = np.asarray(self.columns, dtype=bool)
        values[:, mask] = values[:, mask].astype(np.float32).astype(np.float64)
        return values


def round_thresholds(model: Any, columns: list[bool]) -> Any:
    """A copy of a fitted HistGradientBoosting model whose split thresholds on the
    marked feature columns are rounded to float32 values (see :class:`RoundToFloat32`)."""
    import copy

    rounded = copy.deepcopy(model)
    marked = np.flatnonzero(np.asarray(columns, dtype=bool))
    for trees in rounded._predictors:
        for tree in trees:
            nodes = tree.nodes
            split = (nodes["is_leaf"] == 0) & np.isin(nodes["feature_idx"], marked)
            thresholds = nodes["num_threshold"][split]
            nodes["num_threshold"][split] = thresholds.astype(np.float32).astype(np.float64)
    return rounded


def _round_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    operator.outputs[0].type = DoubleTensorType([None, len(operator.raw_operator.columns)])


def _round_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    from modelyard.export._common import add_const, add_node

    values = operator.inputs[0].full_name
    single = add_node(scope, container, "Cast", [values], to=TensorProto.FLOAT)
    rounded = add_node(scope, container, "Cast", [single], to=TensorProto.DOUBLE)
    mask = add_const(scope, container, [operator.raw_operator.columns], np.bool_)
    container.add_node(
        "Where",
        [mask, rounded, values],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("RoundToFloat32"),
    )


#: The last skl2onnx release checked to still have the bug :func:`bool_flags_bug` names.
BOOL_FLAGS_LAST_AFFECTED = "1.20.0"


@cache
def bool_flags_bug() -> bool:
    """Whether the installed skl2onnx and protobuf reject HistGradientBoosting graphs.

    skl2onnx's ``add_tree_to_attribute_pairs_hist_gradient_boosting``
    (``skl2onnx/common/tree_ensemble.py``) gives leaves ``missing = False``, a Python
    ``bool``, for the int list ``nodes_missing_value_tracks_true``; protobuf 5 and later
    refuse it ("Expected an int, got a boolean"), so no HistGradientBoosting model
    converts. No upstream report was found (onnx/sklearn-onnx, checked against
    skl2onnx 1.20.0). The cast in :func:`_hist_gradient_boosting` applies to skl2onnx
    <= :data:`BOOL_FLAGS_LAST_AFFECTED` with protobuf >= 5 only. On a skl2onnx upgrade:
    if tests/export still pass without the cast, delete it and this function; if not,
    raise :data:`BOOL_FLAGS_LAST_AFFECTED`.
    """
    from packaging.version import Version

    skl2onnx = Version(metadata.version("skl2onnx"))
    protobuf = Version(metadata.version("protobuf"))
    return skl2onnx <= Version(BOOL_FLAGS_LAST_AFFECTED) and protobuf >= Version("5")


def _hist_gradient_boosting(stock: Any) -> Any:
    """skl2onnx's tree converter, fixed for HistGradientBoosting.

    Where :func:`bool_flags_bug` holds, its boolean attribute values are cast to int.
    On double input, the trees are written as ``ai.onnx.ml`` v3
    nodes with double thresholds (``*_as_tensor``), so features are compared in double
    as scikit-learn does; their float output is cast to the double type skl2onnx
    declares.
    """

    def converter(scope: Any, operator: Any, container: Any) -> Any:
        from onnx import TensorProto, numpy_helper
        from skl2onnx.common.data_types import DoubleTensorType

        model = operator.raw_operator
        categorical = getattr(model, "is_categorical_", None)
        if categorical is not None and np.any(categorical):
            # skl2onnx ignores the category bitsets: the graph would predict wrongly.
            raise ExportError(
                f"{type(model).__name__} with categorical_features has no ONNX converter"
            )
        original = container.add_node
        declared = {variable.full_name: variable.type for variable in operator.outputs}
        double = isinstance(operator.inputs[0].type, DoubleTensorType)
        cast_flags = bool_flags_bug()

        def add_node(op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
            flags = attrs.get("nodes_missing_value_tracks_true")
            if cast_flags and flags is not None:
                attrs["nodes_missing_value_tracks_true"] = [int(flag) for flag in flags]
            if not (double and op_type in _TREE_OPS):
                return original(op_type, inputs, outputs, *args, **attrs)
            for key in _AS_TENSOR:
                if key in attrs:
                    values = np.asarray(attrs.pop(key), dtype=np.float64).ravel()
                    attrs[f"{key}_as_tensor"] = numpy_helper.from_array(values, name=key)
            attrs.pop("nodes_hitrates", None)
            attrs["op_version"] = 3
            names = [outputs] if isinstance(outputs, str) else list(outputs)
            fixed, casts = [], []
            for position, name in enumerate(names):
                scores = position == (0 if op_type == "TreeEnsembleRegressor" else 1)
                if scores and isinstance(declared.get(name), DoubleTensorType):
                    single = scope.get_unique_variable_name(f"{name}_float")
                    fixed.append(single)
                    casts.append((single, name))
                else:
                    fixed.append(name)
            result = original(op_type, inputs, fixed, *args, **attrs)
            for single, name in casts:
                original(
                    "Cast",
                    [single],
                    [name],
                    to=TensorProto.DOUBLE,
                    name=scope.get_unique_operator_name("CastTrees"),
                )
            return result

        container.add_node = add_node  # an instance attribute shadows the method
        try:
            if double:  # double thresholds need ai.onnx.ml v3
                return stock(scope, operator, container, op_version=3)
            return stock(scope, operator, container)
        finally:
            del container.add_node

    return converter


# -- LabelEncodedClassifier ---------------------------------------------------------


def _label_encoded_parser(
    scope: Any, model: Any, inputs: list[Any], custom_parsers: Any = None
) -> Any:
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common.data_types import (
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    inner_model = model.estimator_
    alias = sklearn_operator_name_map.get(type(inner_model))
    if alias is None:
        raise ExportError(
            f"LabelEncodedClassifier: {type(inner_model).__name__} has no ONNX converter"
        )
    inner = scope.declare_local_operator(alias, inner_model)
    inner.inputs = list(inputs)
    codes = scope.declare_local_variable("codes", Int64TensorType())
    probabilities = scope.declare_local_variable("probabilities", FloatTensorType())
    inner.outputs.extend([codes, probabilities])
    decode = scope.declare_local_operator(_DECODE, model)
    decode.inputs = [codes]
    label_type = (
        Int64TensorType if _integer_labels(np.asarray(model.classes_)) else StringTensorType
    )
    label = scope.declare_local_variable("label", label_type())
    decode.outputs.append(label)
    return [label, probabilities]


def _label_decode_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    classes = np.asarray(operator.raw_operator.classes_)
    kind = Int64TensorType if _integer_labels(classes) else StringTensorType
    operator.outputs[0].type = kind([None])


def _label_decode_converter(scope: Any, operator: Any, container: Any) -> None:
    classes = np.asarray(operator.raw_operator.classes_)
    attrs: dict[str, Any] = {"keys_int64s": list(range(len(classes)))}
    if _integer_labels(classes):
        attrs.update(values_int64s=[int(label) for label in classes], default_int64=-1)
    else:
        attrs.update(values_strings=[str(label) for label in classes], default_string="")
    container.add_node(
        "LabelEncoder",
        [operator.inputs[0].full_name],
        [operator.outputs[0].full_name],
        op_domain=ML_DOMAIN,
        op_version=2,
        name=scope.get_unique_operator_name("LabelDecode"),
        **attrs,
    )


# -- registration -------------------------------------------------------------------


def register_model_converters() -> None:
    """Register the estimator converters with skl2onnx (idempotent)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    update_registered_converter(
        HistGradientBoostingRegressor,
        "SklearnHistGradientBoostingRegressor",
        calculate_linear_regressor_output_shapes,
        _hist_gradient_boosting(convert_sklearn_random_forest_regressor_converter),
        options={"raw_scores": [True, False]},
    )
    update_registered_converter(
        HistGradientBoostingClassifier,
        "SklearnHistGradientBoostingClassifier",
        calculate_linear_classifier_output_shapes,
        _hist_gradient_boosting(convert_sklearn_random_forest_classifier),
        options=_CLASSIFIER_OPTIONS,
    )
    update_registered_converter(
        LabelEncodedClassifier,
        _DECODE,
        _label_decode_shape,
        _label_decode_converter,
        parser=_label_encoded_parser,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},  # ignored
    )
    update_registered_converter(
        RoundToFloat32, "ModelyardRoundToFloat32", _round_shape, _round_converter
    )
    _register_boosters()


def _register_boosters() -> None:
    """LightGBM and XGBoost through onnxmltools, when those libraries are installed."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        logger.debug("LightGBM or onnxmltools not installed: no LightGBM converter")
    else:
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        logger.debug("XGBoost or onnxmltools not installed: no XGBoost converter")
    else:
        update_registered_converter(
            XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )
        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
