"""``model.decision_threshold``: fixed or chosen on validation rows, applied by every runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedShuffleSplit

from _projects import THRESHOLD_TEST_FROM, classification_frame, threshold_project
from modelyard import api
from modelyard.errors import SpecError
from modelyard.export._runtime import OnnxRuntime, build_feeds
from modelyard.export.onnx import columns_from_frame
from modelyard.models.fit import predict
from modelyard.models.threshold import threshold_of, unwrap_threshold
from modelyard.settings import Settings
from modelyard.spec import ProjectSpec
from modelyard.types import DecisionThreshold

_CUTOFF = THRESHOLD_TEST_FROM
_project = threshold_project


def _train(folder: Path, home: Path) -> Any:
    return api.train(folder, settings=Settings(home=home))


def test_fixed_threshold_labels_alike_in_pipeline_onnx_and_report(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    result = _train(_project(tmp_path / "p", 0.2), settings.home)
    pipeline = api.load_model(result.ref, settings=settings)
    rule = threshold_of(pipeline.steps[-1][1])
    assert rule == DecisionThreshold(0.2, "churned")
    rows = classification_frame(rows=300, seed=11)
    reference = predict(pipeline, rows)
    churned = list(reference.classes or []).index("churned")
    expected = np.where(reference.proba[:, churned] >= 0.2, "churned", "stayed")  # type: ignore[index]
    assert reference.values.tolist() == expected.tolist()
    argmax = np.asarray(reference.classes)[reference.proba.argmax(axis=1)]  # type: ignore[union-attr]
    assert (argmax != expected).any(), "the threshold must change some labels here"

    with api.open_registry(settings) as registry:
        version = registry.get_version(result.ref)
        runtime = OnnxRuntime.from_version(registry, version)
    assert runtime.threshold == rule
    output = runtime.predict(columns_from_frame(rows, runtime.inputs), len(rows))
    assert output.values.tolist() == expected.tolist()
    assert version.artifacts["onnx"].extra["parity"]["labels_equal"] is True
    # The bare .onnx file labels by the threshold too (its metadata records it).
    with api.open_registry(settings) as registry:
        graph = registry.read_artifact(version, "onnx")
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    feeds = build_feeds(runtime.inputs, columns_from_frame(rows, runtime.inputs), len(rows))
    assert session.run(None, feeds)[0].tolist() == expected.tolist()
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["modelyard.decision_threshold"]) == {
        "value": 0.2,
        "positive": "churned",
    }

    lineage = version.lineage_record.model.decision_threshold
    assert lineage is not None and lineage["value"] == 0.2 and lineage["rule"] == "fixed"
    assert result.report.decision_threshold is not None
    assert result.report.decision_threshold.value == 0.2


def _f1_choice(frame: pd.DataFrame, pipeline: Any, spec: ProjectSpec) -> float:
    """The F1 threshold recomputed by hand on the validation rows of the training rows."""
    train = frame[frame["signup_date"] < _CUTOFF]
    target = train["label"].to_numpy()
    features = pipeline[:-1].transform(train)
    fit_at, validate_at = next(
        StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=spec.seed).split(
            features, target
        )
    )
    model = clone(unwrap_threshold(pipeline.steps[-1][1]))
    model.fit(features[fit_at], target[fit_at])
    churned = list(model.classes_).index("churned")
    scores = model.predict_proba(features[validate_at])[:, churned]
    grid = np.linspace(scores.min(), scores.max(), 200)
    f1 = [
        f1_score(
            target[validate_at],
            np.where(scores >= t, "churned", "stayed"),
            pos_label="churned",
            zero_division=0.0,
        )
        for t in grid
    ]
    return float(grid[int(np.argmax(f1))])


def test_f1_threshold_is_chosen_on_validation_rows_never_on_evaluation_rows(
    tmp_path: Path,
) -> None:
    frame = classification_frame(rows=500, seed=3)
    home = tmp_path / "home"
    first = _train(_project(tmp_path / "a", {"rule": "f1"}, frame=frame), home)
    chosen = first.version.lineage_record.model.decision_threshold
    assert chosen is not None and chosen["rule"] == "f1"
    assert chosen["validation_rows"] == int(np.ceil(0.2 * (frame["signup_date"] < _CUTOFF).sum()))
    pipeline = api.load_model(first.ref, settings=Settings(home=home))
    spec = ProjectSpec.model_validate(first.version.spec)
    assert chosen["value"] == pytest.approx(_f1_choice(frame, pipeline, spec))

    # Flip every evaluation label: the evaluation changes, the threshold does not.
    flipped = frame.copy()
    late = flipped["signup_date"] >= _CUTOFF
    flipped.loc[late, "label"] = np.where(
        flipped.loc[late, "label"] == "churned", "stayed", "churned"
    )
    second = _train(_project(tmp_path / "b", {"rule": "f1"}, frame=flipped), home)
    again = second.version.lineage_record.model.decision_threshold
    assert again is not None and again["value"] == chosen["value"]
    assert second.report.metrics != first.report.metrics


def test_chosen_threshold_is_reproduced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rule = {"rule": "cost", "false_positive_cost": 1, "false_negative_cost": 4}
    result = _train(_project(tmp_path / "p", rule), home)
    report = api.reproduce(result.ref, settings=Settings(home=home))
    assert report.matches, report
    pipeline = api.load_model(result.ref, settings=Settings(home=home))
    recorded = result.version.lineage_record.model.decision_threshold
    assert recorded is not None
    assert threshold_of(pipeline.steps[-1][1]) == DecisionThreshold(recorded["value"], "churned")
    # Missed churners cost four false alarms: the threshold sits below one half.
    assert recorded["value"] < 0.5


def test_recall_rule_reaches_its_target_on_the_validation_rows(tmp_path: Path) -> None:
    result = _train(
        _project(tmp_path / "p", {"rule": "recall", "target_recall": 0.9}), tmp_path / "home"
    )
    recorded = result.version.lineage_record.model.decision_threshold
    assert recorded is not None and recorded["validation_score"] > 0  # a precision
    assert "recall >= 0.9" in recorded["detail"]
    assert result.report.metrics["recall"] >= 0.7  # on new rows, near the target


@pytest.mark.parametrize(
    ("threshold", "task", "match"),
    [
        ({"rule": "cost"}, "binary", r"false_positive_cost and false_negative_cost"),
        ({"rule": "recall"}, "binary", r"needs target_recall"),
        ({"rule": "f1", "target_recall": 0.8}, "binary", r"target_recall applies to rule"),
        (1.5, "binary", r"decision_threshold"),
        (0.3, "multiclass", r"model\.decision_threshold: a decision threshold applies to binary"),
    ],
)
def test_bad_threshold_specs_are_refused(threshold: Any, task: str, match: str) -> None:
    from modelyard.spec import parse_spec

    text = (
        f"name: n\ntask: {task}\ntarget: y\ndata:\n  source:\n    path: a.csv\n"
        "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"
        f"  decision_threshold: {threshold}\n"
    )
    with pytest.raises(SpecError, match=match):
        parse_spec(text)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """``churn:1`` with a fixed threshold of 0.2, which moves some labels."""
    folder = tmp_path_factory.mktemp("fixed")
    settings = Settings(home=folder / "home")
    return settings, _train(_project(folder / "p", 0.2), settings.home).ref


def test_the_mobile_export_labels_by_the_threshold(
    fixed: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, ref = fixed
    result = api.export_edge(ref, target="mobile", output=tmp_path / "m", settings=settings)
    ort = result.parity["ort"]
    assert result.ok and ort is not None and ort.labels_equal


@pytest.mark.e2e
def test_the_web_export_labels_by_the_threshold_in_chromium(
    fixed: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, ref = fixed
    folder = tmp_path / "w"
    result = api.export_edge(ref, target="web", output=folder, verify=True, settings=settings)
    browser = result.parity["browser"]
    assert result.ok and browser is not None and browser.labels_equal
    document = (folder / "contract.json").read_text()
    assert '"decision_threshold": {' in document


def test_evaluate_reports_the_threshold_its_charts_and_the_lineage(
    fixed: tuple[Settings, str],
) -> None:
    from modelyard.evaluation.report import render_text

    settings, ref = fixed
    report = api.evaluate(ref, settings=settings)
    assert report.decision_threshold is not None and report.decision_threshold.rule == "fixed"
    assert report.charts is not None and report.charts.classification is not None
    assert report.charts.classification.threshold == 0.2
    assert report.charts.importance is not None
    assert sorted(report.charts.importance.columns) == sorted(
        ["tenure_months", "monthly_spend", "support_tickets", "plan", "region"]
    )
    assert report.lineage is not None and report.lineage["decision threshold"] == "0.2 (fixed)"
    text = render_text(report)
    assert "decision threshold: 0.2 on P(churned) (fixed: set in the spec)" in text
