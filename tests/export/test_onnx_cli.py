"""``modelyard export``: convert a registered version on demand, check it, record it.

One test runs the installed command in a subprocess; the others call the CLI in
process (``modelyard.cli.run``), which parses and renders exactly the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from _projects import regression_project, run_cli
from modelyard import api
from modelyard.cli import run
from modelyard.errors import ModelyardError
from modelyard.export.onnx import ExportError, convert_pipeline
from modelyard.registry import ArtifactInput, Registry
from modelyard.settings import Settings


def _cli(settings: Settings, *args: str) -> int:
    return run(["--home", str(settings.home), *args])


def test_export_command_writes_registers_and_reports(own_yard: Settings, tmp_path: Path) -> None:
    target = tmp_path / "houses.onnx"
    result = run_cli("export", "houses:1", "--output", str(target), "--json", home=own_yard.home)
    shown = json.loads(result.stdout)
    assert shown["ref"] == "houses:1"
    assert shown["role"] == "onnx" and shown["media_type"] == "application/onnx"
    assert shown["extra"]["parity"]["ok"] is True
    assert shown["extra"]["precision"] == "float64-splits"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == shown["digest"]
    history = api.history("houses", settings=own_yard)
    assert [entry.action for entry in history[:2]] == ["add_artifact", "register"]


def test_export_keeps_an_existing_artifact_unless_forced(
    own_yard: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(own_yard, "export", "churn:1") == 0
    first = capsys.readouterr().out
    assert "churn:1 → ONNX (float64-splits)" in first
    assert "labels equal" in first
    assert _cli(own_yard, "export", "churn") == 0  # churn = its latest version, 1
    assert [e.action for e in api.history("churn", settings=own_yard)].count("add_artifact") == 1
    assert _cli(own_yard, "export", "churn:1", "--force") == 0
    entries = [e for e in api.history("churn", settings=own_yard) if e.action == "add_artifact"]
    assert len(entries) == 2
    assert entries[0].details["replaced"] == entries[1].details["digest"]


def test_export_refuses_to_write_a_graph_without_parity(
    own_yard: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.export_onnx("houses:1", settings=own_yard)
    with Registry.open(own_yard) as registry:
        version = registry.get_version("houses:1")
        record = version.artifacts["onnx"]
        failing = {**record.extra, "parity": {**record.extra["parity"], "ok": False}}
        data = registry.read_artifact(version, "onnx")
        registry.add_artifact(
            version,
            "onnx",
            ArtifactInput(data, record.media_type, failing),
            actor="t",
            replace=True,
        )
    target = tmp_path / "houses.onnx"
    assert _cli(own_yard, "export", "houses:1", "--output", str(target)) == 1
    message = capsys.readouterr().err
    assert "does not reproduce its pipeline" in message
    assert "no file was written" in message
    assert not target.exists()


def test_export_of_an_unknown_version_fails_with_exit_2(
    own_yard: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(own_yard, "export", "houses:7") == 2
    assert "has no version 7" in capsys.readouterr().err


def test_a_step_without_converter_is_named(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    project = regression_project(
        tmp_path / "houses",
        features={
            "categorical": ["town"],
            "transforms": [
                {
                    "kind": "custom",
                    "transformer": "sklearn.preprocessing.SplineTransformer",
                    "columns": ["size"],
                }
            ],
        },
    )
    api.train(project, settings=settings)
    with pytest.raises(
        ExportError, match=r"step 'features\.columns\.custom_0' \(sklearn\."
    ) as info:
        api.export_onnx("houses:1", settings=settings)
    assert isinstance(info.value, ModelyardError)
    assert "served by its scikit-learn pipeline" in str(info.value)
    assert "onnx" not in api.show("houses:1", settings=settings).artifacts


def test_classifiers_without_probabilities_and_wrong_tasks_are_refused(
    own_yard: Settings,
) -> None:
    from sklearn.base import clone
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import Pipeline

    from modelyard.registry.readers import evaluation_frame

    pipeline = api.load_model("churn:1", settings=own_yard)
    with pytest.raises(ExportError, match=r"does not fit task 'regression'"):
        convert_pipeline(pipeline, task="regression")
    with Registry.open(own_yard) as registry:
        rows = evaluation_frame(registry, registry.get_version("churn:1"))
    ridge = Pipeline([("features", clone(pipeline.steps[0][1])), ("model", RidgeClassifier())])
    ridge.fit(rows, rows["label"])
    with pytest.raises(ExportError, match=r"RidgeClassifier gives no class probabilities"):
        convert_pipeline(ridge, task="binary")
