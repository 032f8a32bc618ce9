"""Compression: pruning (first k, reweighted best k), quantization, distillation, and the
registered versions they make (``modelyard compress``, ``modelyard distill``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard import api
from modelyard.cli import run
from modelyard.export.compress import (
    best_k_path,
    ensemble_size,
    first_k,
    graph_size,
    quantize_graph,
    reweighted,
    unquantizable,
)
from modelyard.export.onnx import ExportError, convert_pipeline
from modelyard.models.fit import predict
from modelyard.registry.readers import load_version_pipeline
from modelyard.settings import Settings
from modelyard.workflows.compress import nearby_rows
from modelyard.workflows.reproduce import reproduce_version
from modelyard.workflows.train import Build

FitFn = Callable[..., Build]


@pytest.fixture(scope="module")
def sales(small_ames: pd.DataFrame) -> pd.DataFrame:
    """The small Ames rows without ``Pool.QC`` (almost always missing)."""
    return small_ames.drop(columns=["Pool.QC"])


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("sklearn.ensemble.HistGradientBoostingRegressor", "max_iter"),
        ("sklearn.ensemble.GradientBoostingRegressor", "n_estimators"),
        ("sklearn.ensemble.RandomForestRegressor", "n_estimators"),
    ],
)
def test_first_k_is_the_model_trained_with_k(
    fit: FitFn, sales: pd.DataFrame, model: str, key: str
) -> None:
    large = fit(sales, model=model, params={key: 24})
    small = fit(sales, model=model, params={key: 9})
    pruned = first_k(large.pipeline, 9)
    rows = large.eval_frame
    assert ensemble_size(pruned) == 9 and ensemble_size(large.pipeline) == 24
    np.testing.assert_array_equal(
        predict(pruned, rows).values, predict(small.pipeline, rows).values
    )
    # The original is left whole.
    np.testing.assert_array_equal(predict(large.pipeline, rows).values, large.predictions.values)


def test_first_k_refuses_what_it_cannot_prune(fit: FitFn, sales: pd.DataFrame) -> None:
    linear = fit(sales, model="sklearn.linear_model.Ridge")
    assert ensemble_size(linear.pipeline) is None
    with pytest.raises(ExportError, match="modelyard distill"):
        first_k(linear.pipeline, 3)
    boosted = fit(sales, params={"max_iter": 10})
    with pytest.raises(ExportError, match="choose k from 1 to 10"):
        first_k(boosted.pipeline, 11)


def test_best_k_reweights_a_sparse_subset(fit: FitFn, sales: pd.DataFrame) -> None:
    built = fit(sales, params={"max_iter": 40, "learning_rate": 0.05})
    rows = built.eval_frame
    same = reweighted(built.pipeline, np.ones(40))
    np.testing.assert_allclose(predict(same, rows).values, built.predictions.values, rtol=1e-12)
    train = built.frame.iloc[built.train_rows]
    path = best_k_path(built.pipeline, train, train["price"].to_numpy())
    counts = [int(np.count_nonzero(weights)) for weights in path]
    assert counts == sorted(counts) and counts[0] < 40 and counts[-1] > counts[0]
    assert all((weights >= 0).all() for weights in path)
    sparse = reweighted(built.pipeline, path[0])
    assert ensemble_size(sparse) == counts[0]
    # The reweighted ensemble is what the weights say: baseline + sum of weighted trees.
    outputs = np.diff(
        np.vstack(
            [
                np.full(len(rows), built.pipeline[-1]._baseline_prediction.ravel()[0]),
                *built.pipeline[-1].staged_predict(built.pipeline[:-1].transform(rows)),
            ]
        ),
        axis=0,
    ).T
    expected = built.pipeline[-1]._baseline_prediction.ravel()[0] + outputs @ path[0]
    np.testing.assert_allclose(predict(sparse, rows).values, expected, rtol=1e-9)
    classifier = fit(
        sales,
        task="binary",
        target="expensive",
        model=("sklearn.ensemble.HistGradientBoostingClassifier"),
    )
    with pytest.raises(ExportError, match="first k trees instead"):
        best_k_path(classifier.pipeline, train, train["price"].to_numpy())


def test_quantization_applies_to_float_matrix_products_only(
    fit: FitFn, sales: pd.DataFrame
) -> None:
    trees = fit(sales, params={"max_iter": 5})
    graph, _, _ = convert_pipeline(trees.pipeline, task="regression")
    assert "no MatMul or Gemm" in (unquantizable(graph) or "")
    with pytest.raises(ExportError, match="not applicable"):
        quantize_graph(graph)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    numbers = sales[["area", "Lot.Area", "Year.Built", "Overall.Qual"]].to_numpy(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network = fit(
            sales,
            model="sklearn.neural_network.MLPRegressor",
            params={"hidden_layer_sizes": [64, 64], "max_iter": 20},
        )
        single = MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=5, random_state=0)
        single.fit(numbers / numbers.std(0), sales["price"] / 1e5)
    graph, _, _ = convert_pipeline(network.pipeline, task="regression")
    assert "float64" in (unquantizable(graph) or "")
    # A float32 graph (skl2onnx's default for a bare estimator) is quantized.
    from skl2onnx import to_onnx

    floats = to_onnx(single, numbers[:1].astype(np.float32)).SerializeToString()
    assert unquantizable(floats) is None
    quantized = quantize_graph(floats)
    import onnx

    kinds = {node.op_type for node in onnx.load_model_from_string(quantized).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & kinds
    assert graph_size(quantized).raw < graph_size(floats).raw / 2


def test_nearby_rows_keep_each_column_s_own_values() -> None:
    rows = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "town": ["a", "b", "c", None]})
    made = nearby_rows(rows, 50, seed=1)
    assert len(made) == 50 and list(made.columns) == ["size", "town"]
    assert set(made["size"]) <= set(rows["size"])
    assert set(made["town"].dropna()) <= {"a", "b", "c"}
    pd.testing.assert_frame_equal(made, nearby_rows(rows, 50, seed=1))
    assert nearby_rows(rows, 0, seed=1).empty


def test_compress_registers_the_smallest_model_within_the_loss(own_yard: Settings) -> None:
    report = api.compress("houses:1", max_metric_loss=0.02, settings=own_yard)
    methods = {row.method: row for row in report.rows}
    assert set(methods) == {"reference", "first-k", "best-k", "float32", "quantize-int8"}
    assert methods["quantize-int8"].note.startswith("not applicable")
    reference = methods["reference"]
    assert reference.size_gzip and reference.latency_ms and reference.metric
    assert reference.trees is not None
    fitting = [r for r in report.rows if r.method in ("first-k", "best-k") and r.within]
    assert fitting and all(r.loss is not None and r.loss <= 0.02 for r in fitting)
    smallest = min(fitting, key=lambda r: r.size_gzip or 0)
    # A smaller ensemble than the version's, in trees and in bytes.
    assert smallest.trees is not None and smallest.trees < reference.trees
    assert smallest.size_gzip is not None and smallest.size_gzip < reference.size_gzip
    # The trees with float32 thresholds: measured, their parity cost recorded.
    reduced = methods["float32"]
    assert reduced.size_gzip and reduced.latency_ms and reduced.metric is not None
    assert reduced.parity_max_abs is not None and reduced.parity_max_abs > 0
    assert reduced.note.startswith(("parity holds", "parity fails"))
    assert reduced.within == (
        reduced.note.startswith("parity holds") and (reduced.loss or 0.0) <= 0.02
    )
    assert report.registered == "houses:2"
    with api.open_registry(own_yard) as registry:
        version = registry.get_version("houses:2")
        derived = version.lineage_record.derived
        assert derived is not None and derived.parent == "houses:1"
        assert derived.method == smallest.method
        assert derived.details["size_gzip"] == smallest.size_gzip
        assert version.artifacts["onnx"].extra["parity"]["ok"] is True
        stored = json.loads(registry.read_artifact(registry.get_version("houses:1"), "compression"))
        assert stored["registered"] == "houses:2"
        assert [row["method"] for row in stored["rows"]] == [row.method for row in report.rows]
        pipeline = load_version_pipeline(registry, version)
        assert ensemble_size(pipeline) == smallest.trees
        # The registered metric is the one the table reports.
        assert version.metrics["rmse"] == pytest.approx(smallest.metric)
        if derived.method == "first-k":
            assert derived.retrainable and version.spec["model"]["params"]["max_iter"] == (
                smallest.trees
            )


def test_distill_registers_a_student_naming_its_teacher(own_yard: Settings) -> None:
    result = api.distill(
        "houses:1",
        student="sklearn.tree.DecisionTreeRegressor",
        params={"max_depth": 6},
        settings=own_yard,
    )
    assert result.version.ref == "houses:2"
    assert set(result.fidelity) == {"rmse", "mae", "r2"} and result.fidelity["r2"] > 0.5
    assert result.generated_rows > 0
    assert result.row.size_gzip is not None and result.reference.size_gzip is not None
    with api.open_registry(own_yard) as registry:
        version = registry.get_version("houses:2")
        derived = version.lineage_record.derived
        assert derived is not None
        assert (derived.method, derived.parent, derived.retrainable) == (
            "distill",
            "houses:1",
            False,
        )
        assert derived.details["student"] == "sklearn.tree.DecisionTreeRegressor"
        assert derived.details["fidelity"] == result.fidelity  # the report, kept
        assert version.spec["model"]["estimator"] == "sklearn.tree.DecisionTreeRegressor"
        assert load_version_pipeline(registry, version)[-1].get_depth() <= 6
        report = reproduce_version(registry, version)
    assert not report.matches and "reproduce houses:1 instead" in report.differences[0]


def test_distill_a_classifier_reports_agreement(own_yard: Settings) -> None:
    result = api.distill(
        "churn:1",
        student="sklearn.tree.DecisionTreeClassifier",
        params={"max_depth": 4},
        generated=200,
        settings=own_yard,
    )
    assert set(result.fidelity) == {"agreement"} and 0.5 <= result.fidelity["agreement"] <= 1
    assert result.generated_rows == 200 and result.version.ref == "churn:2"


def test_compress_and_distill_commands(
    own_yard: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(own_yard.home)]
    code = run(
        [*home, "compress", "houses:1", "--max-metric-loss", "2%", "--no-register", "--json"]
    )
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["max_loss"] == 0.02 and record["registered"] is None
    assert record["rows"][0]["method"] == "reference"
    code = run([*home, "compress", "houses:1", "--max-metric-loss", "2%", "--no-register"])
    printed = capsys.readouterr().out
    assert code == 0 and "compression within 2.0% of rmse" in printed
    for method in ("reference", "first-k", "best-k", "float32", "quantize-int8"):
        assert method in printed
    code = run(
        [
            *home,
            "distill",
            "houses:1",
            "--student",
            "sklearn.linear_model.Ridge",
            "--param",
            "alpha=2.5",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "houses:2" in printed and "fidelity to the teacher" in printed
    assert api.show("houses:2", settings=own_yard).spec["model"]["params"] == {"alpha": 2.5}
    code = run([*home, "compress", "houses:1", "--max-metric-loss", "lots"])
    assert code == 2 and "write 1% or 0.01" in capsys.readouterr().err


def test_compress_quantizes_a_neural_network_s_float32_graph(
    own_yard: Settings, tmp_path: Path
) -> None:
    """modelyard's graphs compute in double; the int8 row quantizes the float32 graph,
    and both rows record their parity cost against the pipeline."""
    from sklearn.exceptions import ConvergenceWarning

    from _projects import regression_project

    folder = regression_project(
        tmp_path / "net",
        name="net",
        model={
            "estimator": "sklearn.neural_network.MLPRegressor",
            "params": {"hidden_layer_sizes": [64, 64], "max_iter": 50},
        },
        evaluation=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        api.train(folder, settings=own_yard, onnx=False)
    report = api.compress("net:1", max_metric_loss=0.05, settings=own_yard)
    methods = {row.method: row for row in report.rows}
    assert methods["first-k"].note == "MLPRegressor is not an ensemble"
    reference, reduced, quantized = (
        methods["reference"],
        methods["float32"],
        methods["quantize-int8"],
    )
    assert reference.size_raw and reduced.size_raw and quantized.size_raw
    assert quantized.size_raw < reduced.size_raw < reference.size_raw
    assert quantized.parity_max_abs is not None and quantized.metric is not None
    assert quantized.parity_max_abs > (reduced.parity_max_abs or 0.0)
    assert quantized.latency_ms and quantized.note.startswith("measured, not registered")
    assert report.registered is None  # nothing prunable; the graphs have no sklearn twin
    with api.open_registry(own_yard) as registry:
        stored = json.loads(registry.read_artifact(registry.get_version("net:1"), "compression"))
    assert [row["method"] for row in stored["rows"]] == [row.method for row in report.rows]
    assert stored["rows"][-1]["size_gzip"] == quantized.size_gzip


@pytest.mark.slow
def test_the_house_price_example_prunes_within_1_percent_and_distills_into_a_tree(
    ames_project: Path, tmp_path: Path
) -> None:
    """The bundled house-price model: ``compress --max-metric-loss 1%`` registers an
    ensemble at least 4 times smaller (gzip) within 1% of its RMSE; a depth-8 tree
    distilled from it names its teacher and keeps its fidelity report."""
    settings = Settings(home=tmp_path / "home")
    teacher = api.train(ames_project, settings=settings).version.ref
    report = api.compress(teacher, max_metric_loss=0.01, settings=settings)
    rows = {row.method: row for row in report.rows}
    reference = rows["reference"]
    smallest = min(
        (r for r in report.rows if r.within and r.method in ("first-k", "best-k")),
        key=lambda r: r.size_gzip or 0,
    )
    assert smallest.size_gzip and reference.size_gzip
    assert reference.size_gzip / smallest.size_gzip >= 4
    assert smallest.loss is not None and smallest.loss <= 0.01
    assert report.registered is not None
    assert rows["float32"].parity_max_abs is not None

    result = api.distill(
        teacher,
        student="sklearn.tree.DecisionTreeRegressor",
        params={"max_depth": 8},
        settings=settings,
    )
    assert set(result.fidelity) == {"rmse", "mae", "r2"}
    with api.open_registry(settings) as registry:
        version = registry.get_version(result.version.ref)
        derived = version.lineage_record.derived
        assert derived is not None and derived.parent == teacher
        assert derived.method == "distill" and derived.details["fidelity"] == result.fidelity
        assert load_version_pipeline(registry, version)[-1].get_depth() <= 8
        assert version.metrics["rmse"] == pytest.approx(result.row.metric)
