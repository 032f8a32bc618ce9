"""``modelyard export --target mobile|web``: what is written, what is recorded, and the
refusal of an export whose parity fails (a version given another version's graph)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _projects import regression_project, run_cli
from modelyard import api
from modelyard.errors import CheckFailed, ModelyardError
from modelyard.export.onnx import columns_from_frame
from modelyard.export.web import runtime_folder
from modelyard.models.fit import predict
from modelyard.registry import ArtifactInput
from modelyard.registry.readers import evaluation_frame, load_version_pipeline
from modelyard.settings import Settings


def _ort_predict(model: Path, document: dict, frame) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Predict with the ``.ort`` file in plain ONNX Runtime, fed as contract.json says."""
    import onnxruntime as ort

    from modelyard.export._records import OnnxInput

    inputs = [OnnxInput.from_dict(item) for item in document["model"]["inputs"]]
    columns = columns_from_frame(frame, inputs)
    feeds = {}
    for item in inputs:
        values = np.asarray(columns[item.column])
        if item.kind == "categorical":
            missing = document["model"]["missing_category"]
            values = np.array([missing if v is None else v for v in values], dtype=object)
        elif item.kind == "datetime":
            values = values.view(np.int64)
        else:
            values = values.astype(item.dtype)
        feeds[item.onnx_name] = values.reshape(-1, 1)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_mobile_export_loads_in_onnx_runtime_and_is_recorded(
    own_yard: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "churn-mobile"
    shown = json.loads(
        run_cli(
            "export",
            "churn:1",
            "--target",
            "mobile",
            "--output",
            str(folder),
            "--json",
            home=own_yard.home,
        ).stdout
    )
    assert shown["ok"] and shown["parity"]["ort"]["ok"] and shown["parity"]["onnx"]["ok"]
    assert sorted(path.name for path in folder.iterdir()) == [
        "contract.json",
        "model.ort",
        "model.required_operators.config",
    ]
    config = (folder / "model.required_operators.config").read_text()
    assert "ai.onnx.ml;" in config and "TreeEnsemble" in config
    document = json.loads((folder / "contract.json").read_text())
    assert [c["name"] for c in document["contract"]["columns"]] == [
        i["column"] for i in document["model"]["inputs"]
    ]
    with api.open_registry(own_yard) as registry:
        version = registry.get_version("churn:1")
        record = version.artifacts["mobile"]
        assert registry.read_artifact(version, "mobile") == (folder / "model.ort").read_bytes()
        rows = evaluation_frame(registry, version)
        expected = predict(load_version_pipeline(registry, version), rows)
    assert record.extra["parity"]["ort"]["rows"] == len(rows)
    assert record.extra["files"]["model.ort"] == shown["files"]["model.ort"]
    _, probabilities = _ort_predict(folder / "model.ort", document, rows)
    np.testing.assert_allclose(probabilities, expected.proba, atol=1e-4)
    classes = document["model"]["classes"]
    assert list(np.asarray(classes)[probabilities.argmax(axis=1)]) == list(expected.values)


@pytest.fixture
def mismatched(own_yard: Settings, tmp_path: Path) -> Settings:
    """``houses:2``, trained on other data, given ``houses:1``'s ONNX graph (and its
    record, which says the graph holds parity): a real graph that predicts wrongly."""
    api.train(regression_project(tmp_path / "houses2", seed=9), settings=own_yard, onnx=False)
    first = api.export_onnx("houses:1", settings=own_yard)
    with api.open_registry(own_yard) as registry:
        graph = registry.read_artifact(first, "onnx")
        extra = first.artifacts["onnx"].extra
        second = registry.get_version("houses:2")
        registry.add_artifact(
            second, "onnx", ArtifactInput(graph, "application/onnx", extra), actor="test"
        )
    return own_yard


def test_a_failing_parity_is_refused_unless_allowed(mismatched: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    with pytest.raises(CheckFailed) as caught:
        api.export_edge("houses:2", target="mobile", output=folder, settings=mismatched)
    message = str(caught.value)
    assert "does not reproduce its pipeline: ort: max |diff|" in message
    assert "--allow-parity-failure" in message and "nothing was written" in message
    assert not folder.exists()
    with api.open_registry(mismatched) as registry:
        assert "mobile" not in registry.get_version("houses:2").artifacts

    result = run_cli(
        "export",
        "houses:2",
        "--target",
        "mobile",
        "--output",
        str(folder),
        "--allow-parity-failure",
        home=mismatched.home,
    )
    assert "ort: parity FAILS" in result.stdout
    assert (folder / "model.ort").is_file()
    with api.open_registry(mismatched) as registry:
        record = registry.get_version("houses:2").artifacts["mobile"].extra
    assert record["ok"] is False and record["parity"]["ort"]["max_abs"] > 1.0


def test_web_export_without_a_browser_records_what_it_did_not_check(
    own_yard: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime_folder()  # ONNX Runtime Web's files are installed (scripts/web-runtime)
    monkeypatch.setenv("MODELYARD_CHROMIUM", str(tmp_path / "no-such-browser"))
    folder = tmp_path / "web"
    result = api.export_edge("houses:1", target="web", output=folder, settings=own_yard)
    assert result.parity["browser"] is None and result.ok
    assert "browser parity not measured" in result.notes[0]
    assert (folder / "index.html").is_file() and (folder / "ort-wasm-simd-threaded.wasm").is_file()
    import onnx

    graph = onnx.load(str(folder / "model.onnx"))
    assert graph.ir_version <= 13
    # One [N, k] input per dtype, every column once, in the contract's order per dtype.
    document = json.loads((folder / "contract.json").read_text())
    groups = document["model"]["groups"]
    assert [item.name for item in graph.graph.input] == [group["name"] for group in groups]
    columns = [column for group in groups for column in group["columns"]]
    assert sorted(columns) == sorted(item["column"] for item in document["model"]["inputs"])
    # contract.js is its parts joined, one scope exporting the contract.
    script = (folder / "contract.js").read_text()
    assert script.startswith("/*") and script.rstrip().endswith("})();")
    assert script.count("window.modelyardContract = {") == 1
    with pytest.raises(ModelyardError, match="no Chromium"):
        api.export_edge("houses:1", target="web", output=folder, verify=True, settings=own_yard)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ModelyardError, match="is not a modelyard export folder"):
        api.export_edge("houses:1", target="web", output=tmp_path / "taken", settings=own_yard)


@pytest.mark.e2e
def test_the_browser_parity_refuses_a_wrong_graph(mismatched: Settings, tmp_path: Path) -> None:
    from _browser import require_browser

    require_browser()
    with pytest.raises(CheckFailed, match=r"browser: max \|diff\|"):
        api.export_edge(
            "houses:2", target="web", output=tmp_path / "web", verify=True, settings=mismatched
        )
    assert not (tmp_path / "web").exists()
