"""Fold the filling of missing categories into the encoders that read the filled text.

The converters in ``_encoders`` build a categorical imputer followed by an encoder as
scikit-learn runs them: join the k text columns into one ``[N, k]`` tensor, flag the
missing ones (a ``LabelEncoder`` and a ``Cast``), fill them (``Where``), then take each
column back out (``Gather``) and look it up in its own ``LabelEncoder``. On string
tensors each of those steps copies every string, and ONNX Runtime's profile of a graph
with a few dozen text columns puts them close to the cost of the tree ensemble itself.

Filling column j with ``fill_j`` and then looking it up is the same as looking the raw
column up in a table whose entry for :data:`MISSING_CATEGORY` is the entry of
``fill_j`` (or the encoder's default when ``fill_j`` is not a key), so each encoder is
rewired to read its raw input, with that one entry changed, and the join, flag, fill
and take-out steps are dropped. Nothing else changes: the export's parity check
compares the folded graph's predictions with the pipeline's, as for any graph.

The pass matches only the nodes ``_encoders`` tags and the exact shape it builds; any
other shape (columns dropped because training saw them all empty, a reader that is not
an encoder, a filled tensor the graph returns) is left as built. Written here because
the rewrite depends on what these nodes mean (no general ONNX optimiser knows that a
``LabelEncoder`` lookup commutes with a ``Where`` fill), and dead nodes are pruned here
too: ``onnx.utils.Extractor`` would rename the graph and its producer and does not see
names read inside subgraphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.export._common import MISSING_CATEGORY, ML_DOMAIN, TEXT_IMPUTATION_TAG

__all__ = ["fold_text_imputation"]

_VALUE_KINDS = ("floats", "int64s", "strings")


@dataclass(frozen=True)
class _Imputation:
    """One tagged fill: the raw column each position reads, and its fill text."""

    columns: list[str]
    fills: list[bytes]


def fold_text_imputation(model: Any) -> int:
    """Fold every tagged categorical fill of ``model`` (an ONNX ``ModelProto``) into
    the encoders reading it, in place; return how many fills were folded."""
    graph = model.graph
    folded = 0
    for node in list(graph.node):
        if node.op_type == "Where" and node.name.startswith(TEXT_IMPUTATION_TAG):
            folded += _fold_one(graph, node)
    if folded:
        _prune(graph)
    return folded


def _fold_one(graph: Any, where: Any) -> int:
    producers = {output: node for node in graph.node for output in node.output}
    constants = {tensor.name: tensor for tensor in graph.initializer}
    imputation = _imputation(graph, where, producers, constants)
    if imputation is None:
        return 0
    readers = _encoder_readers(graph, where.output[0], len(imputation.columns), constants)
    if readers is None:
        return 0
    for column, encoder in readers:
        _rewire(encoder, imputation.columns[column], imputation.fills[column])
    return 1


def _imputation(
    graph: Any, where: Any, producers: dict[str, Any], constants: dict[str, Any]
) -> _Imputation | None:
    """The raw columns and fills of ``where``, if it has the shape ``_encoders`` builds."""
    from onnx import TensorProto

    mask, fill, values = where.input
    if fill not in constants or constants[fill].data_type != TensorProto.STRING:
        return None
    fills = [bytes(text) for text in constants[fill].string_data]
    inputs = {item.name for item in graph.input}
    if values in inputs:
        columns = [values]
    else:
        joined = producers.get(values)
        if joined is None or joined.op_type != "Concat" or _attribute(joined, "axis") != 1:
            return None
        columns = list(joined.input)
        if not all(column in inputs for column in columns):
            return None
    cast = producers.get(mask)
    if cast is None or cast.op_type != "Cast" or _attribute(cast, "to") != TensorProto.BOOL:
        return None
    flag = producers.get(cast.input[0])
    if flag is None or flag.op_type != "LabelEncoder" or list(flag.input) != [values]:
        return None
    if _attribute(flag, "keys_strings") != [MISSING_CATEGORY.encode()]:
        return None
    if len(fills) != len(columns):
        return None
    return _Imputation(columns, fills)


def _encoder_readers(
    graph: Any, filled: str, width: int, constants: dict[str, Any]
) -> list[tuple[int, Any]] | None:
    """Each text ``LabelEncoder`` reading ``filled`` and the column it reads, or None
    when anything else reads it (or it is a graph output)."""
    from onnx import numpy_helper

    outputs = {item.name for item in graph.output}
    readers: list[tuple[int, Any]] = []
    pending: list[tuple[str, int | None]] = [(filled, None)]
    while pending:
        name, column = pending.pop()
        if name in outputs:
            return None
        for node in graph.node:
            if name not in node.input:
                continue
            if node.op_type == "Identity":
                pending.append((node.output[0], column))
            elif node.op_type == "Gather" and column is None and node.input[0] == name:
                index = node.input[1]
                if _attribute(node, "axis") != 1 or index not in constants:
                    return None
                taken = numpy_helper.to_array(constants[index]).ravel().tolist()
                if len(taken) != 1 or not 0 <= taken[0] < width:
                    return None
                pending.append((node.output[0], int(taken[0])))
            elif _is_text_encoder(node) and (column is not None or width == 1):
                readers.append((0 if column is None else column, node))
            else:
                return None
    return readers


def _is_text_encoder(node: Any) -> bool:
    names = {item.name for item in node.attribute}
    return (
        node.op_type == "LabelEncoder"
        and node.domain == ML_DOMAIN
        and "keys_strings" in names
        and sum(f"values_{kind}" in names for kind in _VALUE_KINDS) == 1
    )


def _rewire(encoder: Any, column: str, fill: bytes) -> None:
    """Make ``encoder`` read ``column`` and map a missing category as it maps ``fill``."""
    from onnx import helper

    attributes = {item.name: helper.get_attribute_value(item) for item in encoder.attribute}
    kind = next(kind for kind in _VALUE_KINDS if f"values_{kind}" in attributes)
    keys = list(attributes["keys_strings"])
    values = list(attributes[f"values_{kind}"])
    default = attributes.get(f"default_{kind[:-1]}")
    if default is None:  # the operator's own defaults
        default = {"floats": -0.0, "int64s": -1, "strings": b"_Unused"}[kind]
    code = values[keys.index(fill)] if fill in keys else default
    missing = MISSING_CATEGORY.encode()
    if missing in keys:
        values[keys.index(missing)] = code
    else:
        keys.append(missing)
        values.append(code)
    for item in [
        item for item in encoder.attribute if item.name in ("keys_strings", f"values_{kind}")
    ]:
        encoder.attribute.remove(item)
    encoder.attribute.extend(
        [
            helper.make_attribute("keys_strings", keys),
            helper.make_attribute(f"values_{kind}", values),
        ]
    )
    encoder.input[0] = column


def _attribute(node: Any, name: str) -> Any:
    from onnx import helper

    for item in node.attribute:
        if item.name == name:
            return helper.get_attribute_value(item)
    return None


def _prune(graph: Any) -> None:
    """Drop the nodes and initializers no graph output depends on."""
    needed = {item.name for item in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
            needed.update(_subgraph_reads(node))
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    for tensor in [tensor for tensor in graph.initializer if tensor.name not in needed]:
        graph.initializer.remove(tensor)
    for info in [info for info in graph.value_info if info.name not in needed]:
        graph.value_info.remove(info)


def _subgraph_reads(node: Any) -> set[str]:
    """Every name the graphs inside ``node`` read (outer names among them)."""
    names: set[str] = set()
    for attribute in node.attribute:
        for inner in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for child in inner.node:
                names.update(child.input)
                names.update(_subgraph_reads(child))
    return names
