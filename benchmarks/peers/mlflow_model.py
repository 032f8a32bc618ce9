"""Save a modelyard version as an MLflow model directory: scikit-learn or ONNX flavour.

Runs inside ``benchmarks/.venv-mlflow`` (mlflow + modelyard installed; see
``benchmarks/requirements-mlflow.txt``), with ``MODELYARD_HOME`` pointing at the
benchmark's registry:

    python benchmarks/peers/mlflow_model.py sklearn house-prices:1 /tmp/.../sk ames.csv.gz
    python benchmarks/peers/mlflow_model.py onnx house-prices:1 /tmp/.../onnx ames.csv.gz

(the last argument, the training data, gives the ONNX model its signature).

``sklearn``: the fitted pipeline as it is (``mlflow.sklearn.save_model``, MLflow's
default skops format, trusting the types of this file we just wrote), without a
signature, so MLflow's scoring server does no schema enforcement: the least work MLflow
can do per request.

``onnx``: the version's ONNX export (the same graph modelyard serves, read
checksum-verified from the registry), saved with ``mlflow.onnx.save_model`` and the
session options modelyard's runtime uses (1 intra-op and 1 inter-op thread, sequential,
no spinning). MLflow's ONNX flavour feeds a DataFrame to a multi-input graph as
``{input name: column.values}``: one 1-D array per column, named after the column, with
the dtype pandas gave it. So the graph gets a front of a few nodes, the least that makes
it servable that way, and the export itself is unchanged behind it:

- one input per raw column, named like the column (``Lot.Area``, where the export says
  ``Lot_Area``), 1-D, reshaped to the export's ``[N, 1]`` (Unsqueeze);
- a missing category reaches ONNX Runtime as the text ``"None"`` (or ``"nan"``), which
  the front maps to the export's ``modelyard.missing_category`` (LabelEncoder + Where;
  the Ames data has no category spelled so);
- the signature MLflow infers from the training data (``infer_signature``): MLflow
  refuses to turn int64 into float64 (it may lose precision), so integer columns are
  ``long`` and the front casts them to the float64 the graph takes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import modelyard

SESSION_OPTIONS = {
    "intra_op_num_threads": 1,
    "inter_op_num_threads": 1,
    "execution_mode": "sequential",
    "extra_session_config": {"session.intra_op.allow_spinning": "0"},
}
REQUIREMENTS = ["mlflow", "scikit-learn", "onnxruntime", "modelyard"]


def save_sklearn(ref: str, destination: Path) -> None:
    """Load ``ref``'s pipeline from the registry and save it as an MLflow sklearn model."""
    import mlflow.sklearn
    import skops.io

    pipeline = modelyard.load_model(ref)
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    # Explicit requirements skip MLflow's requirement inference (a slow model reload);
    # `mlflow models serve --env-manager local` never installs them.
    mlflow.sklearn.save_model(
        pipeline,
        str(destination),
        pip_requirements=REQUIREMENTS,
        skops_trusted_types=trusted,
    )


def _ml_opset(model: object) -> tuple[int, int]:
    versions = {entry.domain: entry.version for entry in model.opset_import}  # type: ignore[attr-defined]
    return max(versions.get("", versions.get("ai.onnx", 13)), 13), versions.get("ai.onnx.ml", 2)


def save_onnx(ref: str, destination: Path, training_csv: Path) -> None:
    """Save ``ref``'s ONNX export, behind MLflow's column-per-input front, with mlflow.onnx."""
    import mlflow.onnx
    import onnx
    import pandas as pd
    from mlflow.models import infer_signature
    from onnx import TensorProto, compose, helper

    with modelyard.open_registry() as registry:
        version = registry.get_version(ref)
        exported = onnx.load_from_string(registry.read_artifact(version, "onnx"))
    meta = {entry.key: entry.value for entry in exported.metadata_props}
    inputs = json.loads(meta["modelyard.inputs"])
    missing = meta["modelyard.missing_category"]
    # As MLflow's documentation has it: the signature inferred from the training data.
    signature = infer_signature(pd.read_csv(training_csv)[[item["column"] for item in inputs]])
    assert signature.inputs is not None
    declared = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    opset, ml_opset = _ml_opset(exported)
    elements = {
        "float64": TensorProto.DOUBLE,
        "float32": TensorProto.FLOAT,
        "long": TensorProto.INT64,
        "double": TensorProto.DOUBLE,
    }
    axes = helper.make_tensor("front.axes", TensorProto.INT64, [1], [1])
    marker = helper.make_tensor("front.marker", TensorProto.STRING, [], [missing.encode()])
    nodes = [
        helper.make_node("Constant", [], ["front.axes"], value=axes),
        helper.make_node("Constant", [], ["front.missing"], value=marker),
    ]
    graph_inputs, graph_outputs = [], []
    for item in inputs:
        raw, name = item["column"], item["onnx_name"]
        if item["kind"] == "datetime":
            raise SystemExit(f"{raw}: date inputs are not supported by this benchmark peer")
        fed = f"front.out.{name}"  # joined to the export's input `name` by merge_models
        column = f"front.{name}"
        if item["kind"] == "categorical":
            graph_inputs.append(helper.make_tensor_value_info(raw, TensorProto.STRING, ["N"]))
            graph_outputs.append(helper.make_tensor_value_info(fed, TensorProto.STRING, ["N", 1]))
            nodes += [
                helper.make_node("Unsqueeze", [raw, "front.axes"], [column]),
                helper.make_node(
                    "LabelEncoder",
                    [column],
                    [f"{column}.missing"],
                    domain="ai.onnx.ml",
                    keys_strings=["None", "nan"],
                    values_int64s=[1, 1],
                    default_int64=0,
                ),
                helper.make_node(
                    "Cast", [f"{column}.missing"], [f"{column}.mask"], to=TensorProto.BOOL
                ),
                helper.make_node("Where", [f"{column}.mask", "front.missing", column], [fed]),
            ]
            continue
        wanted, given = elements[item["dtype"]], elements[declared[raw]]
        graph_inputs.append(helper.make_tensor_value_info(raw, given, ["N"]))
        graph_outputs.append(helper.make_tensor_value_info(fed, wanted, ["N", 1]))
        if given != wanted:  # integer columns: MLflow sends int64
            nodes.append(helper.make_node("Cast", [raw], [column], to=wanted))
            nodes.append(helper.make_node("Unsqueeze", [column, "front.axes"], [fed]))
        else:
            nodes.append(helper.make_node("Unsqueeze", [raw, "front.axes"], [fed]))
    front = helper.make_model(
        helper.make_graph(nodes, "mlflow_columns", graph_inputs, graph_outputs),
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        ir_version=exported.ir_version,
    )
    io_map = [(f"front.out.{item['onnx_name']}", item["onnx_name"]) for item in inputs]
    merged = compose.merge_models(front, exported, io_map=io_map)
    mlflow.onnx.save_model(
        merged,
        str(destination),
        signature=signature,
        pip_requirements=REQUIREMENTS,
        onnx_execution_providers=["CPUExecutionProvider"],
        onnx_session_options=SESSION_OPTIONS,
    )


def main(flavour: str, ref: str, destination: Path, training_csv: Path) -> None:
    """Save ``ref`` at ``destination`` in the MLflow ``flavour`` (sklearn or onnx)."""
    if flavour == "sklearn":
        save_sklearn(ref, destination)
    elif flavour == "onnx":
        save_onnx(ref, destination, training_csv)
    else:
        raise SystemExit(f"unknown flavour {flavour!r}: sklearn or onnx")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: mlflow_model.py sklearn|onnx REF DESTINATION TRAINING_CSV")
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
