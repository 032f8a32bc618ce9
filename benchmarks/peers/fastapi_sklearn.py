"""The hand-written baseline: FastAPI + the fitted pipeline, one DataFrame per request.

This is what a user writes without a serving layer: load the SAME fitted scikit-learn
pipeline that modelyard serves and call ``pipeline.predict(pd.DataFrame(records))`` for
every request. It takes MLflow's ``{"dataframe_records": [...]}`` body at ``/invocations``
so every server in the benchmark receives the same bytes.

Run (the benchmark does this): ``MODELYARD_HOME=... uvicorn --app-dir benchmarks/peers
fastapi_sklearn:app --workers 1 --no-access-log``; ``BENCH_MODEL_REF`` picks the version
(default ``house-prices:1``). Native threads come from the environment
(``OMP_NUM_THREADS``), which the benchmark sets for every server alike.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from fastapi import FastAPI

import modelyard

pipeline = modelyard.load_model(os.environ.get("BENCH_MODEL_REF", "house-prices:1"))
app = FastAPI()


@app.post("/invocations")
def invocations(payload: dict[str, Any]) -> dict[str, Any]:
    """Predict the records of an MLflow-style body."""
    frame = pd.DataFrame(payload["dataframe_records"])
    return {"predictions": pipeline.predict(frame).tolist()}
