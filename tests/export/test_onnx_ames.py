"""The real house-price example (all of Ames, its spec's features) exports with parity.

The fast tests fit the example's own pipeline with fewer boosting iterations, as a
regression and as binary and multiclass classifiers; the slow one trains the example
exactly as ``modelyard quickstart`` does and exports the registered version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelyard import api
from modelyard.export.onnx import export_pipeline
from modelyard.settings import Settings
from modelyard.spec import ProjectSpec, load_spec
from modelyard.workflows.train import build


def _example_spec(project: Path, **changes: Any) -> ProjectSpec:
    data = load_spec(project).spec.model_dump(mode="json")
    data["model"]["params"]["max_iter"] = 60
    data["evaluation"] = {}
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return ProjectSpec.model_validate(data)


def test_example_regression_exports_with_parity(ames_project: Path, ames: pd.DataFrame) -> None:
    spec = _example_spec(
        ames_project, **{"features.drop": ["Mo.Sold", "sold_on", "expensive", "band"]}
    )
    result = build(spec, ames_project, ames)
    exported = export_pipeline(result.pipeline, result.eval_frame, task="regression")
    assert exported.parity.ok, exported.parity
    assert exported.parity.max_rel < 1e-5
    names = {item.column: item.onnx_name for item in exported.inputs}
    assert names["Lot.Area"] == "Lot_Area"
    assert names["Neighborhood"] == "Neighborhood"
    assert [item.column for item in exported.inputs] == list(result.plan.input_columns)
    assert {item.kind for item in exported.inputs} == {"numeric", "categorical"}
    assert exported.opset[""] == 18
    assert exported.opset["ai.onnx.ml"] <= 3
    assert set(exported.versions) == {"skl2onnx", "onnx", "onnxruntime", "onnxmltools"}
    extra = exported.artifact_extra()
    assert extra["parity"]["ok"] is True
    assert extra["inputs"][0] == {
        "column": exported.inputs[0].column,
        "onnx_name": exported.inputs[0].onnx_name,
        "kind": exported.inputs[0].kind,
        "dtype": "float64",
    }


@pytest.mark.parametrize(("task", "target"), [("binary", "expensive"), ("multiclass", "band")])
def test_example_classifiers_export_with_parity(
    ames_project: Path, ames: pd.DataFrame, task: str, target: str
) -> None:
    others = [label for label in ("price", "expensive", "band") if label != target]
    spec = _example_spec(
        ames_project,
        task=task,
        target=target,
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 60, "learning_rate": 0.05},
        },
        **{"features.drop": ["Mo.Sold", "sold_on", *others]},
    )
    result = build(spec, ames_project, ames)
    exported = export_pipeline(result.pipeline, result.eval_frame, task=task)
    assert exported.parity.ok, exported.parity
    assert exported.parity.labels_equal is True
    assert exported.parity.max_abs <= 1e-4
    assert exported.classes == sorted(set(ames[target]))


@pytest.mark.slow
def test_quickstart_version_exports_through_the_api(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    trained = api.quickstart(tmp_path / "project", settings=settings)
    version = api.export_onnx(trained.ref, output=tmp_path / "hp.onnx", settings=settings)
    parity = version.artifacts["onnx"].extra["parity"]
    assert parity["ok"] is True
    assert parity["rows"] >= 3 * version.lineage["data"]["eval_rows"]
    assert (tmp_path / "hp.onnx").stat().st_size == version.artifacts["onnx"].size


def test_parity_is_checked_on_a_bounded_sample(ames_project: Path, ames: pd.DataFrame) -> None:
    spec = _example_spec(
        ames_project, **{"features.drop": ["Mo.Sold", "sold_on", "expensive", "band"]}
    )
    result = build(spec, ames_project, ames)
    full = export_pipeline(result.pipeline, result.eval_frame, task="regression")
    sampled = export_pipeline(result.pipeline, result.eval_frame, task="regression", max_rows=40)
    assert len(result.eval_frame) > 40
    # the given rows plus two harder copies of them
    assert full.parity.rows == 3 * len(result.eval_frame)
    assert sampled.parity.rows == 3 * 40
    assert sampled.parity.ok
