"""The graph the edge exports ship: the ONNX export, made readable by the edge runtimes.

Two changes, neither of which changes a prediction (each export's parity checks that):

- the IR version is lowered to the lowest its operator sets allow: onnx 1.23 writes IR
  version 14 for graphs it builds, which ONNX Runtime Web 1.30 refuses, and the IR
  version only says which file features a reader needs;
- the text a missing category is fed as, :data:`~modelyard.export._common.MISSING_CATEGORY`,
  starts with a NUL character, and ONNX Runtime's C API reads string tensors as C
  strings, cut at the first NUL (microsoft/onnxruntime#2284, closed as won't fix): ONNX
  Runtime Web then sees every missing category as ``""``, and so do the Java and
  Objective-C APIs of ONNX Runtime Mobile. The edge graph uses
  :data:`EDGE_MISSING_CATEGORY` instead, wherever the graph holds that text.
"""

from __future__ import annotations

from typing import Any

from modelyard.export._common import MISSING_CATEGORY

__all__ = ["EDGE_MISSING_CATEGORY", "edge_model"]

#: What the edge graphs take for a missing category: no NUL, and no text a category
#: plausibly holds (a control character first).
EDGE_MISSING_CATEGORY = "\x01modelyard:missing"


def edge_model(model: bytes) -> bytes:
    """The ONNX export's graph, changed as the module docstring says."""
    import onnx
    from onnx import helper

    graph = onnx.load_model_from_string(model)
    needed = helper.find_min_ir_version_for(list(graph.opset_import), ignore_unknown=True)
    graph.ir_version = min(graph.ir_version, needed)
    old, new = MISSING_CATEGORY.encode(), EDGE_MISSING_CATEGORY.encode()
    _replace_text(graph.graph, old, new)
    for entry in graph.metadata_props:
        if entry.key == "modelyard.missing_category":
            entry.value = EDGE_MISSING_CATEGORY
    return bytes(graph.SerializeToString())


def _replace_text(graph: Any, old: bytes, new: bytes) -> None:
    """Replace the text ``old`` in every attribute, constant and initializer of ``graph``
    and of the graphs inside its nodes."""
    for tensor in graph.initializer:
        _replace_in_tensor(tensor, old, new)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.s == old:
                attribute.s = new
            for index, value in enumerate(attribute.strings):
                if value == old:
                    attribute.strings[index] = new
            if attribute.HasField("t"):
                _replace_in_tensor(attribute.t, old, new)
            for tensor in attribute.tensors:
                _replace_in_tensor(tensor, old, new)
            if attribute.HasField("g"):
                _replace_text(attribute.g, old, new)
            for inner in attribute.graphs:
                _replace_text(inner, old, new)


def _replace_in_tensor(tensor: Any, old: bytes, new: bytes) -> None:
    for index, value in enumerate(tensor.string_data):
        if value == old:
            tensor.string_data[index] = new
