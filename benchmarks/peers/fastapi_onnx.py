"""The hand-written ONNX baseline: FastAPI + ONNX Runtime on the same exported graph.

What a user writes who takes modelyard's ONNX export and serves it themselves: one
``InferenceSession`` on the export's bytes (read checksum-verified from the registry),
with the session options modelyard's own runtime uses (1 intra-op thread, 1 inter-op
thread, sequential, all graph optimisations, no spinning), and per request a pandas
DataFrame of the records turned into the graph's ``[N, 1]`` inputs as the export's
metadata describes them (``modelyard.inputs``; a missing category is fed as
``modelyard.missing_category``). It takes MLflow's ``{"dataframe_records": [...]}`` body
at ``/invocations`` like every server in the benchmark.

Run (the benchmark does this): ``MODELYARD_HOME=... uvicorn --app-dir benchmarks/peers
fastapi_onnx:app --workers 1 --no-access-log``; ``BENCH_MODEL_REF`` picks the version
(default ``house-prices:1``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from fastapi import FastAPI

from modelyard.api import open_registry

with open_registry() as registry:
    _version = registry.get_version(os.environ.get("BENCH_MODEL_REF", "house-prices:1"))
    _model = registry.read_artifact(_version, "onnx")  # checksum-verified

_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(_model, _options, providers=["CPUExecutionProvider"])
_meta = session.get_modelmeta().custom_metadata_map
_inputs: list[dict[str, str]] = json.loads(_meta["modelyard.inputs"])
_missing_category = _meta["modelyard.missing_category"]
_missing_datetime = int(_meta["modelyard.missing_datetime"])
_output = session.get_outputs()[0].name
app = FastAPI()


def _feed(values: pd.Series, item: dict[str, str]) -> np.ndarray:
    if item["kind"] == "numeric":
        array = pd.to_numeric(values).to_numpy(dtype=item["dtype"], na_value=np.nan)
    elif item["kind"] == "datetime":
        ticks = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]").view(np.int64)
        array = np.where(values.isna().to_numpy(), _missing_datetime, ticks)
    else:
        array = values.astype(object).where(values.notna(), _missing_category).to_numpy()
    return array.reshape(-1, 1)


@app.post("/invocations")
def invocations(payload: dict[str, Any]) -> dict[str, Any]:
    """Predict the records of an MLflow-style body."""
    frame = pd.DataFrame(payload["dataframe_records"])
    feeds = {item["onnx_name"]: _feed(frame[item["column"]], item) for item in _inputs}
    (predictions,) = session.run([_output], feeds)
    return {"predictions": np.ravel(predictions).tolist()}
