"""Turn a fitted modelyard pipeline into an ONNX graph with one input per raw column.

Precision (see :mod:`modelyard.export.onnx` for the reasons): numeric inputs are double
and the feature steps compute in double, then the model gets what it computes on:

- ``float64``: linear and other models stay in double;
- ``float64-splits``: HistGradientBoosting compares in double with double thresholds, as
  scikit-learn does, except on log/power columns, which it compares as float32 values
  (thresholds rounded likewise) so ONNX Runtime's last-ulp ``Log``/``Exp`` differences
  cannot flip a split that sits on a training value;
- ``float32-model``: scikit-learn's other trees, LightGBM and XGBoost get float32 input,
  as the first two compute on it themselves (LightGBM has only a float converter).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from modelyard.export._common import MISSING_CATEGORY, ML_DOMAIN, ExportError, require
from modelyard.export._fold import fold_text_imputation
from modelyard.export._models import RoundToFloat32, round_thresholds
from modelyard.export._records import OnnxInput
from modelyard.features.transformers import Cross, FrameCoercer, Log1pTransformer
from modelyard.models.estimators import LabelEncodedClassifier
from modelyard.models.threshold import threshold_of, unwrap_threshold
from modelyard.types import DecisionThreshold

__all__ = [
    "PRECISION_DOUBLE",
    "PRECISION_EXACT_SPLITS",
    "PRECISION_FLOAT_MODEL",
    "convert",
    "convert_features",
    "library_versions",
    "modelyard_converters",
    "require",
]

logger = logging.getLogger(__name__)

PRECISION_DOUBLE = "float64"
PRECISION_FLOAT_MODEL = "float32-model"
PRECISION_EXACT_SPLITS = "float64-splits"
_BASE_OPSET = 18
_STRING_CONCAT_OPSET = 20  # Cross joins strings with StringConcat, new in opset 20
_ML_OPSET = 3
_LIBRARIES = ("skl2onnx", "onnx", "onnxruntime", "onnxmltools")
_ONNX_TYPES = {"numeric": "float64", "categorical": "string", "datetime": "int64"}


def library_versions() -> dict[str, str]:
    """Installed versions of the ONNX libraries (``"not installed"`` when absent)."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


#: Held while skl2onnx's registries carry modelyard's converters: two conversions in
#: two threads must not restore the registries under each other.
_REGISTRY_LOCK = threading.RLock()


@contextmanager
def modelyard_converters() -> Iterator[None]:
    """skl2onnx with modelyard's converters for the duration of the block.

    skl2onnx keeps converters, shape calculators, parsers and the class-to-alias map in
    process-wide dictionaries, and modelyard replaces some of its built-in converters
    (``OneHotEncoder``, ``SimpleImputer``, ``KBinsDiscretizer``, HistGradientBoosting...).
    So the dictionaries are copied before registering and put back after: a user who
    converts their own pipeline with skl2onnx, before or after a modelyard export, gets
    skl2onnx's converters. skl2onnx has no public way to unregister, hence its module
    dictionaries are saved and restored as they are (checked by
    tests/export/test_onnx_scope.py against a fresh process's conversion). A conversion
    run by another thread while this block runs would see modelyard's converters.
    """
    from skl2onnx import _parse, _supported_operators
    from skl2onnx.common import _registration

    tables: list[dict[Any, Any]] = [
        _supported_operators.sklearn_operator_name_map,
        _registration._converter_pool,
        _registration._shape_calculator_pool,
        _parse.sklearn_parsers_map,
    ]
    with _REGISTRY_LOCK:
        saved = [dict(table) for table in tables]
        try:
            _register()
            yield
        finally:
            for table, before in zip(tables, saved, strict=True):
                table.clear()
                table.update(before)


def _register() -> None:
    """Register modelyard's converters with skl2onnx (inside :func:`modelyard_converters`)."""
    from modelyard.export._dates import register_date_converter
    from modelyard.export._encoders import register_encoder_converters
    from modelyard.export._models import register_model_converters
    from modelyard.export._numeric import register_numeric_converters
    from modelyard.export._steps import register_step_converters

    register_step_converters()
    register_date_converter()
    register_encoder_converters()
    register_numeric_converters()
    register_model_converters()


def _steps(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every estimator in the pipeline tree, with its dotted path (``features.coerce``)."""
    if isinstance(obj, Pipeline):
        for name, step in obj.steps:
            yield from _steps(step, f"{path}.{name}" if path else name)
    elif isinstance(obj, ColumnTransformer):
        for name, step, _ in obj.transformers_:
            if not isinstance(step, str):  # "drop" / "passthrough"
                yield from _steps(step, f"{path}.{name}")
    elif threshold_of(obj) is not None:  # the estimator converts; the threshold is metadata
        yield from _steps(unwrap_threshold(obj), path)
    else:
        yield path, obj
        if isinstance(obj, LabelEncodedClassifier):
            yield f"{path}.estimator_", obj.estimator_


def _check_convertible(pipeline: Pipeline) -> None:
    from skl2onnx._supported_operators import sklearn_operator_name_map

    for path, step in _steps(pipeline, ""):
        if type(step) not in sklearn_operator_name_map:
            kind = f"{type(step).__module__}.{type(step).__qualname__}"
            raise ExportError(
                f"step {path!r} ({kind}) has no ONNX converter; the version is served by "
                "its scikit-learn pipeline"
            )


def _failing_step(pipeline: Pipeline, exc: BaseException) -> str:
    """The path of the step an error message names, if it names one."""
    text = str(exc)
    for path, step in _steps(pipeline, ""):
        if type(step).__name__ in text:
            return f"step {path!r} ({type(step).__name__})"
    return "the pipeline"


def _coercer(pipeline: Pipeline) -> FrameCoercer:
    for _, step in _steps(pipeline, ""):
        if isinstance(step, FrameCoercer):
            return step
    raise ExportError(
        "the pipeline has no FrameCoercer step: only pipelines built by modelyard convert"
    )


def _is_tree_ensemble(model: Any) -> bool:
    if isinstance(model, LabelEncodedClassifier):
        return _is_tree_ensemble(model.estimator_)
    if type(model).__module__.split(".")[0] in ("lightgbm", "xgboost"):
        return True
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )
    from sklearn.tree import BaseDecisionTree

    trees = (BaseDecisionTree, BaseForest, BaseGradientBoosting, BaseHistGradientBoosting)
    return isinstance(model, trees)


def _is_hist_gradient_boosting(model: Any) -> bool:
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )

    return isinstance(model, BaseHistGradientBoosting)


def _inexact_columns(pipeline: Pipeline) -> list[bool]:
    """One flag per feature column: True where ONNX Runtime may differ from NumPy in the
    last ulp (columns computed through ``Log`` or ``Exp``: log and power transforms)."""
    from sklearn.preprocessing import PowerTransformer

    columns = pipeline.steps[-2][1]
    if isinstance(columns, Pipeline):
        columns = columns.steps[-1][1]
    if not isinstance(columns, ColumnTransformer):
        raise ExportError("the feature steps do not end in a ColumnTransformer")
    width = max((piece.stop for piece in columns.output_indices_.values()), default=0)
    flags = [False] * width
    for name, piece in columns.output_indices_.items():
        transformer = columns.named_transformers_.get(name)
        if transformer is None or isinstance(transformer, str):
            continue
        if any(
            isinstance(step, Log1pTransformer | PowerTransformer)
            for _, step in _steps(transformer, name)
        ):
            flags[piece] = [True] * (piece.stop - piece.start)
    return flags


def inputs_of(coercer: FrameCoercer) -> list[tuple[str, str]]:
    """(column, kind) of every raw input column, in feature order."""
    return [(column, coercer.column_kinds_[column]) for column in coercer.feature_order_]


def convert(
    pipeline: Pipeline, *, task: str, float32_model: bool = False
) -> tuple[Any, list[OnnxInput], str]:
    """Convert a fitted pipeline; see :func:`modelyard.export.onnx.convert_pipeline`."""
    require("skl2onnx")
    with modelyard_converters():
        return _convert(pipeline, task=task, float32_model=float32_model)


def _convert(
    pipeline: Pipeline, *, task: str, float32_model: bool
) -> tuple[Any, list[OnnxInput], str]:
    from skl2onnx.sklapi import CastTransformer

    model_name, model = pipeline.steps[-1]
    # The graph holds the estimator, then the threshold's nodes on its label output
    # (:func:`_threshold_labels`); the threshold is in the metadata too, and every
    # modelyard runtime applies it to the probabilities.
    threshold = threshold_of(model)
    model = unwrap_threshold(model)
    pipeline = Pipeline([*pipeline.steps[:-1], (model_name, model)])
    _check_convertible(pipeline)
    if (task == "regression") == is_classifier(model):
        raise ExportError(f"the pipeline's {type(model).__name__} does not fit task {task!r}")
    if is_classifier(model) and not hasattr(model, "predict_proba"):
        raise ExportError(
            f"{type(model).__name__} gives no class probabilities; only classifiers with "
            "predict_proba convert"
        )
    steps = list(pipeline.steps[:-1])
    precision = PRECISION_DOUBLE
    if float32_model or (_is_tree_ensemble(model) and not _is_hist_gradient_boosting(model)):
        steps.append(("to_float32", CastTransformer(dtype=np.float32)))
        precision = PRECISION_FLOAT_MODEL
    elif _is_hist_gradient_boosting(model):
        inexact = _inexact_columns(pipeline)
        if any(inexact):
            steps.append(("round_inexact", RoundToFloat32(columns=inexact)))
            model = round_thresholds(model, inexact)
        precision = PRECISION_EXACT_SPLITS
    steps.append((model_name, model))
    options: dict[int, dict[str, Any]] = {}
    if is_classifier(model) and not isinstance(model, LabelEncodedClassifier):
        options[id(model)] = {"zipmap": False}
    graph, inputs = _convert_steps(pipeline, Pipeline(steps), options)
    classes = np.asarray(model.classes_).tolist() if is_classifier(model) else None
    if classes is not None:
        _labels_then_probabilities(graph)
    _describe(graph, inputs=inputs, task=task, classes=classes, precision=precision)
    if threshold is not None and classes is not None:
        _threshold_labels(graph, threshold, classes)
        _add_metadata(graph, {"modelyard.decision_threshold": json.dumps(threshold.to_dict())})
    return graph, inputs, precision


def convert_features(pipeline: Pipeline) -> tuple[Any, list[OnnxInput]]:
    """The feature steps alone (all but the model) as a graph whose output is the matrix
    the model receives; used to check the feature converters value by value."""
    require("skl2onnx")
    with modelyard_converters():
        _check_convertible(pipeline)
        return _convert_steps(pipeline, Pipeline(list(pipeline.steps[:-1])), {})


def _convert_steps(
    pipeline: Pipeline, steps: Pipeline, options: dict[int, dict[str, Any]]
) -> tuple[Any, list[OnnxInput]]:
    require("onnx")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

    types = {
        "numeric": DoubleTensorType,
        "categorical": StringTensorType,
        "datetime": Int64TensorType,
    }
    columns = inputs_of(_coercer(pipeline))
    initial_types = [(column, types[kind]([None, 1])) for column, kind in columns]
    has_cross = any(isinstance(step, Cross) for _, step in _steps(pipeline, ""))
    opset = {"": _STRING_CONCAT_OPSET if has_cross else _BASE_OPSET, ML_DOMAIN: _ML_OPSET}
    try:
        graph = convert_sklearn(
            steps, initial_types=initial_types, options=options, target_opset=opset
        )
    except ExportError as exc:
        raise ExportError(f"cannot convert {_failing_step(pipeline, exc)}: {exc}") from exc
    except Exception as exc:  # converters fail with any exception type
        raise ExportError(
            f"cannot convert {_failing_step(pipeline, exc)} to ONNX: "
            f"{type(exc).__name__}: {exc}; the version is served by its scikit-learn pipeline"
        ) from exc
    fold_text_imputation(graph)
    names = [item.name for item in graph.graph.input]
    if len(names) != len(columns):
        raise ExportError(
            f"the ONNX graph has {len(names)} inputs for {len(columns)} columns; "
            "cannot map them to columns"
        )
    inputs = [
        OnnxInput(column=column, onnx_name=name, kind=kind, dtype=_ONNX_TYPES[kind])  # type: ignore[arg-type]
        for (column, kind), name in zip(columns, names, strict=True)
    ]
    return graph, inputs


def _labels_then_probabilities(graph: Any) -> None:
    """Order a classifier's outputs as skl2onnx does: labels, then probabilities."""
    from onnx import TensorProto

    outputs = list(graph.graph.output)
    floating = (TensorProto.FLOAT, TensorProto.DOUBLE)
    ordered = sorted(outputs, key=lambda item: item.type.tensor_type.elem_type in floating)
    if len(outputs) != 2 or ordered[1].type.tensor_type.elem_type not in floating:
        raise ExportError(
            f"the classifier's graph has outputs {[item.name for item in outputs]}; expected "
            "labels and probabilities"
        )
    del graph.graph.output[:]
    graph.graph.output.extend(ordered)


def _threshold_labels(graph: Any, threshold: DecisionThreshold, classes: list[Any]) -> None:
    """Make the label output apply ``threshold`` to the positive class's probability,
    as scikit-learn's FixedThresholdClassifier does (``>=``), so users of the bare file
    get the same labels. The converter's own (highest-probability) labels stay unused."""
    from onnx import TensorProto, helper

    label, proba = graph.graph.output[0], graph.graph.output[1]
    label_type = label.type.tensor_type.elem_type
    positive_at = next(i for i, name in enumerate(classes) if name == threshold.positive)
    chosen = [classes[positive_at], classes[1 - positive_at]]
    if label_type == TensorProto.INT64:
        values: list[Any] = [int(value) for value in chosen]
    elif label_type == TensorProto.STRING:
        values = [str(value).encode() for value in chosen]
    else:
        raise ExportError(f"the classifier's labels have ONNX type {label_type}; cannot threshold")
    argmax = f"{label.name}_highest_probability"
    for node in graph.graph.node:
        node.output[:] = [argmax if name == label.name else name for name in node.output]
    proba_type = proba.type.tensor_type.elem_type

    def constant(name: str, kind: int, value: Any) -> Any:
        return helper.make_node(
            "Constant", [], [name], value=helper.make_tensor(name, kind, [], [value])
        )

    prefix = "modelyard_threshold_"
    graph.graph.node.extend(
        [
            constant(prefix + "column", TensorProto.INT64, positive_at),
            constant(prefix + "value", proba_type, threshold.value),
            constant(prefix + "positive", label_type, values[0]),
            constant(prefix + "negative", label_type, values[1]),
            helper.make_node("Gather", [proba.name, prefix + "column"], [prefix + "score"], axis=1),
            helper.make_node(
                "GreaterOrEqual", [prefix + "score", prefix + "value"], [prefix + "flag"]
            ),
            helper.make_node(
                "Where",
                [prefix + "flag", prefix + "positive", prefix + "negative"],
                [label.name],
            ),
        ]
    )


def _add_metadata(graph: Any, meta: dict[str, str]) -> None:
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value


def _describe(
    graph: Any, *, inputs: list[OnnxInput], task: str, classes: list[Any] | None, precision: str
) -> None:
    """Write what a user of the bare ``.onnx`` file needs into its metadata."""
    from dataclasses import asdict

    meta = {
        "modelyard.task": task,
        "modelyard.inputs": json.dumps([asdict(item) for item in inputs]),
        "modelyard.classes": json.dumps(classes),
        "modelyard.outputs": json.dumps([item.name for item in graph.graph.output]),
        "modelyard.missing_category": MISSING_CATEGORY,
        "modelyard.missing_datetime": "-9223372036854775808",
        "modelyard.precision": precision,
    }
    _add_metadata(graph, meta)
    graph.doc_string = (
        "modelyard pipeline: one [N, 1] input per column (see modelyard.inputs); missing "
        "numbers are NaN, missing categories the modelyard.missing_category text."
    )
