"""Serve predictions with ONNX Runtime (the choice of runtime is :mod:`modelyard.runtime`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import ModelyardError
from modelyard.export._common import MISSING_CATEGORY, ExportError, require
from modelyard.export._records import OnnxInput, Parity
from modelyard.types import (
    KINDS,
    ColumnBlocks,
    ColumnLayout,
    Columns,
    DecisionThreshold,
    RuntimeOutput,
)

if TYPE_CHECKING:
    from modelyard.registry.records import ModelVersion
    from modelyard.registry.registry import Registry

__all__ = ["OnnxRuntime", "build_feeds", "grouped_graph"]

logger = logging.getLogger(__name__)

#: Up to this many rows, category values are checked one by one (faster than pandas).
_SMALL = 64
#: Graph inputs of the grouped graph are named after their dtype, with a prefix no
#: exported input name can have (skl2onnx turns dots into underscores).
_GROUP_PREFIX = "modelyard.inputs."
_NONE: Any = None  # np.equal(block, None) compares each cell with None
_TENSOR_TYPES = {"float64": 11, "float32": 1, "string": 8, "int64": 7}  # onnx.TensorProto


@dataclass(frozen=True)
class _Group:
    """One input of the grouped graph: the exported inputs of one dtype, side by side."""

    name: str
    dtype: str
    items: tuple[OnnxInput, ...]


def _groups(inputs: list[OnnxInput]) -> list[_Group]:
    by_dtype: dict[str, list[OnnxInput]] = {}
    for item in inputs:
        by_dtype.setdefault(item.dtype, []).append(item)
    return [_Group(_GROUP_PREFIX + dtype, dtype, tuple(items)) for dtype, items in by_dtype.items()]


def _grouped_model(model: bytes, groups: list[_Group]) -> bytes:
    """The exported graph behind one ``[N, k]`` input per dtype, split into its inputs.

    ONNX Runtime's per-input cost (conversion and checks, some of it quadratic in the
    number of inputs) dominated one-row calls of graphs with many columns: the Ames
    graph has 77 inputs, and grouped it runs in 100 µs instead of 155 µs. The split is
    exact, so predictions are unchanged; onnx.compose joins the two graphs.
    """
    onnx = require("onnx")
    from onnx import compose, helper

    exported = onnx.load_from_string(model)
    opset = next(
        (entry.version for entry in exported.opset_import if entry.domain in ("", "ai.onnx")), 18
    )
    opset = max(opset, 13)  # Split takes its sizes as an input from opset 13
    nodes, graph_inputs, graph_outputs = [], [], []
    for group in groups:
        element = _TENSOR_TYPES[group.dtype]
        names = [item.onnx_name for item in group.items]
        graph_inputs.append(helper.make_tensor_value_info(group.name, element, ["N", len(names)]))
        graph_outputs += [helper.make_tensor_value_info(name, element, ["N", 1]) for name in names]
        if len(names) == 1:
            nodes.append(helper.make_node("Identity", [group.name], names))
            continue
        sizes = group.name + ".sizes"
        ones = helper.make_tensor(sizes, 7, [len(names)], [1] * len(names))
        nodes.append(helper.make_node("Constant", [], [sizes], value=ones))
        nodes.append(helper.make_node("Split", [group.name, sizes], names, axis=1))
    front = helper.make_model(
        helper.make_graph(nodes, "modelyard_inputs", graph_inputs, graph_outputs),
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=exported.ir_version,
    )
    io_map = [(item.onnx_name, item.onnx_name) for group in groups for item in group.items]
    merged = compose.merge_models(front, exported, io_map=io_map)
    return bytes(merged.SerializeToString())


def grouped_graph(model: bytes, inputs: list[OnnxInput]) -> tuple[bytes, list[dict[str, Any]]]:
    """The graph behind one ``[N, k]`` input per dtype (see :func:`_grouped_model`), and
    its inputs as JSON: for each, its ``name``, ``dtype`` and ``columns`` in order.

    The web export ships this graph: in ONNX Runtime Web each input tensor crosses into
    WebAssembly on its own, and the 77 one-column inputs of the Ames graph made one-row
    predictions several times slower than its two grouped inputs (benchmarks/README.md).
    """
    groups = _groups(inputs)
    described = [
        {"name": group.name, "dtype": group.dtype, "columns": [i.column for i in group.items]}
        for group in groups
    ]
    return _grouped_model(model, groups), described


class OnnxRuntime:
    """Predict with an ONNX graph from :func:`~modelyard.export.onnx.convert_pipeline`.

    Takes decoded :data:`~modelyard.types.Columns` (numbers as float64 with
    NaN, categories as ``str`` with ``None``, dates as ``datetime64``). Classifier labels
    are the class of highest probability, which is what every supported scikit-learn,
    LightGBM and XGBoost classifier predicts; a binary classifier with a decision
    threshold labels by it instead (:class:`~modelyard.types.DecisionThreshold`).
    ``predict`` is safe to call from several threads; ONNX Runtime releases the GIL
    while it computes.

    Args:
        model: the ``.onnx`` bytes.
        inputs: the graph inputs (from the export).
        task: ``regression``, ``binary`` or ``multiclass``.
        classes: a classifier's labels in probability order; None reads them from the
            model's metadata.
        intra_op_threads: threads ONNX Runtime uses for one call (1 suits servers that
            run several calls at once).
        grouped: run the graph behind one ``[N, k]`` input per dtype (see
            :func:`_grouped_model`); ``False`` feeds the exported inputs one by one.
        threshold: a binary classifier's decision threshold; None reads it from the
            model's metadata (``modelyard.decision_threshold``), if there.

    Raises:
        MissingExtraError: onnxruntime is not installed.
        ExportError: ONNX Runtime cannot load the model, or its inputs differ from ``inputs``.
    """

    name = "onnx"
    inline = True  # one row: about 0.1 ms

    def __init__(
        self,
        model: bytes,
        inputs: list[OnnxInput],
        *,
        task: str,
        classes: list[Any] | None,
        intra_op_threads: int = 1,
        grouped: bool = True,
        threshold: DecisionThreshold | None = None,
    ) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would spin and take CPU from the server's other work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime's own error types
            raise ExportError(f"ONNX Runtime cannot load the model: {exc}") from exc
        expected = {item.onnx_name for item in inputs}
        found = {item.name for item in session.get_inputs()}
        if expected != found:
            raise ExportError(
                f"the ONNX model's inputs {sorted(found)} differ from the recorded "
                f"{sorted(expected)}; re-export the version"
            )
        self._metadata = dict(session.get_modelmeta().custom_metadata_map)
        self._groups: list[_Group] | None = None
        if grouped and len(inputs) > 1:
            groups = _groups(list(inputs))
            try:
                session = ort.InferenceSession(
                    _grouped_model(model, groups), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnx's and ONNX Runtime's own error types
                raise ExportError(f"cannot group the ONNX model's inputs: {exc}") from exc
            self._groups = groups
        self._session = session
        self._positions: dict[ColumnLayout, list[tuple[int, np.ndarray[Any, Any] | None]]] = {}
        self.inputs = list(inputs)
        self.task = task
        self.parity: Parity | None = None
        self._outputs = [item.name for item in self._session.get_outputs()]
        self._classes: np.ndarray[Any, Any] | None = None
        if task != "regression":
            if classes is None:
                classes = json.loads(self._metadata.get("modelyard.classes", "null"))
            if not classes:
                raise ExportError("the ONNX model of a classifier records no classes")
            labels = np.asarray(classes)
            self._classes = labels.astype(object) if labels.dtype.kind == "U" else labels
        if threshold is None and "modelyard.decision_threshold" in self._metadata:
            threshold = DecisionThreshold.from_dict(
                json.loads(self._metadata["modelyard.decision_threshold"])
            )
        self.threshold = threshold

    @property
    def classes(self) -> list[Any] | None:
        """A classifier's labels, in the order of the probability columns."""
        return None if self._classes is None else self._classes.tolist()

    @classmethod
    def from_version(
        cls,
        registry: Registry,
        version: ModelVersion,
        *,
        intra_op_threads: int = 1,
        grouped: bool = True,
    ) -> OnnxRuntime:
        """The runtime of a version's ``onnx`` artifact, read checksum-verified.

        Raises:
            ModelNotFoundError: the version has no ``onnx`` artifact.
            IntegrityError: the artifact's bytes differ from the recorded checksum.
            ExportError: the artifact's record is incomplete or ONNX Runtime rejects it.
        """
        from modelyard.registry.readers import read_onnx_graph

        graph = read_onnx_graph(registry, version)
        data, extra = graph.model, graph.extra
        try:
            inputs = [OnnxInput.from_dict(item) for item in extra["inputs"]]
        except (KeyError, TypeError) as exc:
            raise ExportError(
                f"the onnx artifact of {version.ref} records no usable inputs ({exc}); "
                f"re-export it: modelyard export {version.ref} --force"
            ) from exc
        runtime = cls(
            data,
            inputs,
            task=str(version.spec.get("task", "regression")),
            classes=extra.get("classes"),
            intra_op_threads=intra_op_threads,
            grouped=grouped,
            threshold=DecisionThreshold.from_dict(extra.get("decision_threshold")),
        )
        if "parity" in extra:
            runtime.parity = Parity.from_dict(extra["parity"])
        return runtime

    def feeds(self, columns: Columns, rows: int) -> dict[str, np.ndarray[Any, Any]]:
        """The session's feeds for decoded columns: one ``[rows, k]`` array per dtype
        (``[rows, 1]`` per input when the graph is not grouped)."""
        if self._groups is None:
            return build_feeds(self.inputs, columns, rows)
        if isinstance(columns, ColumnBlocks):
            return self._block_feeds(columns)
        feeds = {}
        for group in self._groups:
            parts = [_feed(item, _column(columns, item), rows) for item in group.items]
            feeds[group.name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return feeds

    def _block_feeds(self, columns: ColumnBlocks) -> dict[str, np.ndarray[Any, Any]]:
        """Feeds sliced from decoded blocks: a few NumPy calls, whatever the width."""
        assert self._groups is not None
        positions = self._positions.get(columns.layout)
        if positions is None:
            positions = self._positions[columns.layout] = self._place(columns.layout)
        feeds = {}
        for group, (kind, index) in zip(self._groups, positions, strict=True):
            block = columns.blocks[kind]
            part = block if index is None else block[:, index]
            if kind == 0:
                feeds[group.name] = part.astype(group.dtype, copy=False)
            elif kind == 2:
                feeds[group.name] = part.view(np.int64)
            else:
                feeds[group.name] = _missing_texts(part, copied=index is not None)
        return feeds

    def _place(self, layout: ColumnLayout) -> list[tuple[int, np.ndarray[Any, Any] | None]]:
        """Which block, and which of its columns, each group's inputs are (None: all)."""
        assert self._groups is not None
        placed = []
        for group in self._groups:
            found = []
            for item in group.items:
                if item.column not in layout.index:
                    raise ModelyardError(
                        f"no values for input column {item.column!r}; send every column "
                        "the model was trained on"
                    )
                kind, position = layout.index[item.column]
                if KINDS[kind] != item.kind:
                    raise ModelyardError(
                        f"input column {item.column!r} was decoded as {KINDS[kind]}, "
                        f"the ONNX graph takes it as {item.kind}; re-export the version"
                    )
                found.append((kind, position))
            kinds = {kind for kind, _ in found}
            if len(kinds) != 1:
                raise ModelyardError(f"the {group.dtype} inputs mix kinds of columns")
            kind = kinds.pop()
            index = np.array([position for _, position in found], dtype=np.intp)
            whole = len(index) == len(layout.names[kind]) and bool(
                (index == np.arange(len(index))).all()
            )
            placed.append((kind, None if whole else index))
        return placed

    def predict(self, columns: Columns, rows: int) -> RuntimeOutput:
        """Predict ``rows`` rows given as one array per input column."""
        if rows == 0:
            return self._empty()
        results = self._session.run(self._outputs, self.feeds(columns, rows))
        if self._classes is None:
            return RuntimeOutput(values=np.asarray(results[0], dtype=np.float64).reshape(rows))
        proba = np.asarray(results[1], dtype=np.float64).reshape(rows, -1)
        if self.threshold is not None:
            labels = self.threshold.labels(proba, self._classes.tolist())
        else:
            labels = self._classes[np.argmax(proba, axis=1)]
        return RuntimeOutput(values=labels, proba=proba, classes=self.classes)

    def _empty(self) -> RuntimeOutput:
        if self._classes is None:
            return RuntimeOutput(values=np.empty(0, dtype=np.float64))
        proba = np.empty((0, len(self._classes)), dtype=np.float64)
        return RuntimeOutput(values=self._classes[:0], proba=proba, classes=self.classes)


def build_feeds(
    inputs: list[OnnxInput], columns: Columns, rows: int
) -> dict[str, np.ndarray[Any, Any]]:
    """Feeds of a modelyard ONNX graph for decoded columns (each ``[rows, 1]``).

    Raises:
        ModelyardError: ``columns`` lacks an input column.
    """
    return {item.onnx_name: _feed(item, _column(columns, item), rows) for item in inputs}


def _column(columns: Columns, item: OnnxInput) -> Any:
    try:
        return columns[item.column]
    except KeyError:
        raise ModelyardError(
            f"no values for input column {item.column!r}; send every column the model "
            "was trained on"
        ) from None


def _feed(item: OnnxInput, values: Any, rows: int) -> np.ndarray[Any, Any]:
    array = np.asarray(values)
    if item.kind == "numeric":
        return array.astype(item.dtype, copy=False).reshape(rows, 1)
    if item.kind == "datetime":
        ticks = array.astype("datetime64[ns]", copy=False).view(np.int64)
        return ticks.reshape(rows, 1)
    return _texts(array).reshape(rows, 1)


def _texts(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Category values as ``str``, missing ones as :data:`MISSING_CATEGORY`."""
    if array.dtype == object and len(array) <= _SMALL:
        # A plain loop beats pandas' vectorised checks on the few values of a request.
        texts = [
            value if type(value) is str else MISSING_CATEGORY if _missing(value) else None
            for value in array.tolist()
        ]
        if None not in texts:
            return np.array(texts, dtype=object)
    import pandas as pd

    if pd.api.types.infer_dtype(array, skipna=True) not in ("string", "empty"):
        from modelyard.features.transformers import category_values

        array = category_values(pd.Series(array, dtype=object))  # 20.0 -> "20", as in training
    missing = pd.isna(array)
    array = array.astype(object, copy=True)
    array[missing] = MISSING_CATEGORY
    return array


def _missing_texts(block: np.ndarray[Any, Any], *, copied: bool) -> np.ndarray[Any, Any]:
    """A decoded category block (``str`` or ``None``) with ``None`` as MISSING_CATEGORY."""
    if block.size <= _SMALL:
        if None not in block.ravel().tolist():
            return block
        missing = np.equal(block, _NONE)
    else:
        missing = np.equal(block, _NONE)
        if not missing.any():
            return block
    texts = block if copied else block.copy()
    texts[missing] = MISSING_CATEGORY
    return texts


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
