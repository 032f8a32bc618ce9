"""Save a modelyard version's fitted pipeline as an MLflow model directory.

Runs inside ``benchmarks/.venv-mlflow`` (mlflow + modelyard installed; see
``benchmarks/requirements-mlflow.txt``), with ``MODELYARD_HOME`` pointing at the
benchmark's registry:

    python benchmarks/peers/mlflow_model.py house-prices:1 /tmp/.../mlflow-model

The pipeline is saved as it is (``mlflow.sklearn.save_model``, MLflow's default skops
format, trusting the types of this file we just wrote), without a signature, so MLflow's
scoring server does no schema enforcement: the least work MLflow can do per request.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow.sklearn
import skops.io

import modelyard


def main(ref: str, destination: Path) -> None:
    """Load ``ref`` from the registry and save it as an MLflow sklearn model."""
    pipeline = modelyard.load_model(ref)
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    # Explicit requirements skip MLflow's requirement inference (a slow model reload);
    # `mlflow models serve --env-manager local` never installs them.
    mlflow.sklearn.save_model(
        pipeline,
        str(destination),
        pip_requirements=["mlflow", "scikit-learn", "modelyard"],
        skops_trusted_types=trusted,
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: mlflow_model.py REF DESTINATION")
    main(sys.argv[1], Path(sys.argv[2]))
