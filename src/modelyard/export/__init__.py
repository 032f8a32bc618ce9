"""Export fitted pipelines to portable formats: ONNX (:mod:`modelyard.export.onnx`).

Names are imported on first use, so ``import modelyard.export`` stays cheap and loads
none of the ONNX libraries (they are the optional ``modelyard[onnx]`` extra).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.export.onnx import (
        ExportError,
        OnnxExport,
        OnnxInput,
        OnnxRuntime,
        Parity,
        check_parity,
        convert_pipeline,
        export_pipeline,
        select_runtime,
    )

__all__ = [
    "ExportError",
    "OnnxExport",
    "OnnxInput",
    "OnnxRuntime",
    "Parity",
    "check_parity",
    "convert_pipeline",
    "export_pipeline",
    "select_runtime",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("modelyard.export.onnx"), name)
    raise AttributeError(f"module 'modelyard.export' has no attribute {name!r}")
