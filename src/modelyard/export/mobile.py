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
import gc
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from modelyard.export._common import MISSING_CATEGORY, ExportError, require
from modelyard.export._edge_graph import EDGE_MISSING_CATEGORY
from modelyard.export._records import OnnxInput, Parity
from modelyard.export._runtime import build_feeds
from modelyard.export.onnx import columns_from_frame, compare_outputs
from modelyard.models.fit import predict
from modelyard.types import DecisionThreshold, RuntimeOutput

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
            with contextlib.redirect_stdout(printed), warnings.catch_warnings():
                # Workaround: onnxruntime's tools/ort_format_model/ort_model_processor.py
                # reads the .ort file with open(...).read() and never closes it (still so
                # in onnxruntime 1.32.0), a ResourceWarning that is not ours to fix. Delete
                # this filter once that module reads the file in a `with` block.
                warnings.simplefilter("ignore", ResourceWarning)
                convert_onnx_models_to_ort(
                    source, output_dir=target, optimization_styles=[OptimizationStyle.Fixed]
                )
                gc.collect()  # the unclosed file is finalized here, under the filter
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
    threshold: DecisionThreshold | None = None,
) -> Parity:
    """Load the ``.ort`` bytes in ONNX Runtime and compare with the pipeline on ``rows``.

    The graph is fed as an app feeds it: :func:`build_feeds`'s arrays, a missing
    category as :data:`EDGE_MISSING_CATEGORY`.

    Raises:
        ExportError: ONNX Runtime cannot load the ``.ort`` bytes.
    """
    ort = require("onnxruntime")
    try:
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's own error types
        raise ExportError(f"ONNX Runtime cannot load the ORT-format model: {exc}") from exc
    feeds = build_feeds(inputs, columns_from_frame(rows, inputs), len(rows))
    for item in inputs:
        if item.kind == "categorical":
            texts = feeds[item.onnx_name]
            texts[texts == MISSING_CATEGORY] = EDGE_MISSING_CATEGORY
    results = session.run(None, feeds)
    if classes is None:
        output = RuntimeOutput(values=np.asarray(results[0], dtype=np.float64).reshape(-1))
    else:
        proba = np.asarray(results[1], dtype=np.float64).reshape(len(rows), -1)
        if threshold is not None:  # as an app applies the recorded threshold
            labels = threshold.labels(proba, classes)
        else:
            labels = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
        output = RuntimeOutput(values=labels, proba=proba)
    return compare_outputs(predict(pipeline, rows), output, task=task)
