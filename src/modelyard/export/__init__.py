"""Export fitted pipelines to portable formats: ONNX (:mod:`modelyard.export.onnx`).

Names are imported on first use, so ``import modelyard.export`` stays cheap and loads
none of the ONNX libraries (they are the optional ``modelyard[onnx]`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

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
]


__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "modelyard.export.onnx"))
