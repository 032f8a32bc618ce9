"""The mobile export: the graph in ONNX Runtime's ORT format, for ONNX Runtime Mobile.

``modelyard export REF --target mobile --output DIR`` writes ``model.ort`` (converted by
ONNX Runtime's own tool, ``onnxruntime.tools.convert_onnx_models_to_ort``, with its
fixed optimisations applied), ``model.required_operators.config`` (the reduced operator
configuration for a custom minimal ONNX Runtime build: ``build.sh
--include_ops_by_config``) and ``contract.json`` (the inputs and their rules, as for the
web export). An Android or iOS app links ONNX Runtime Mobile and feeds one ``[N, 1]``
tensor per input, as ``contract.json`` lists them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from modelyard.export._common import ExportError
from modelyard.export._convert import require
from modelyard.export._records import OnnxInput, Parity
from modelyard.export._runtime import OnnxRuntime
from modelyard.export.onnx import columns_from_frame, compare_outputs
from modelyard.models.fit import predict

__all__ = ["CONFIG_NAME", "MODEL_NAME", "convert_to_ort", "ort_parity"]

logger = logging.getLogger(__name__)

MODEL_NAME = "model.ort"
CONFIG_NAME = "model.required_operators.config"


def convert_to_ort(model: bytes) -> tuple[bytes, str]:
    """The ``.ort`` bytes of an ONNX graph and its reduced operator configuration.

    Raises:
        ExportError: ONNX Runtime cannot convert the graph.
        MissingExtraError: onnxruntime is not installed.
    """
    require("onnxruntime")
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with tempfile.TemporaryDirectory(prefix="modelyard-ort-") as scratch:
        source = Path(scratch) / "model.onnx"
        source.write_bytes(model)
        target = Path(scratch) / "out"
        printed = io.StringIO()
        # The tool prints and logs its progress; keep both out of the command's output.
        tool_log = logging.getLogger("ort_format_model.utils")
        level = tool_log.level
        tool_log.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(printed):
                convert_onnx_models_to_ort(
                    source, output_dir=target, optimization_styles=[OptimizationStyle.Fixed]
                )
        except Exception as exc:  # the tool raises ONNX Runtime's own error types
            raise ExportError(
                f"ONNX Runtime cannot convert the graph to ORT format: {exc}"
            ) from exc
        finally:
            tool_log.setLevel(level)
        logger.debug("ORT conversion: %s", printed.getvalue())
        return (target / MODEL_NAME).read_bytes(), (target / CONFIG_NAME).read_text()


def ort_parity(
    model: bytes,
    inputs: list[OnnxInput],
    pipeline: Pipeline,
    rows: pd.DataFrame,
    *,
    task: str,
    classes: list[Any] | None,
) -> Parity:
    """Load the ``.ort`` bytes in ONNX Runtime and compare with the pipeline on ``rows``."""
    # Not grouped: grouping rewrites the graph with onnx, which cannot read ORT format.
    runtime = OnnxRuntime(model, inputs, task=task, classes=classes, grouped=False)
    output = runtime.predict(columns_from_frame(rows, inputs), len(rows))
    return compare_outputs(predict(pipeline, rows), output, task=task)
